"""What running an operation needs: the application context (`app`), journaled jobs
(`jobrun`, `inline_jobs`), the schedules in effect and which workers are present."""
