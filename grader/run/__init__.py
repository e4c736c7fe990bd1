"""A cohort's run, stage by stage (grader.cohort drives it)."""
