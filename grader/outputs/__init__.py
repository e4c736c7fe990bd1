"""What a run writes for people and platforms: reports, figures and exports."""
