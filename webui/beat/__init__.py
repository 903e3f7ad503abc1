"""Beat monitoring: read every schedule, match the fires we saw, and judge each entry on time, late or missed."""
