"""vault.jobs: the job queue (Huey), its one task, and the worker that runs it.

The only package that imports huey. The CLI submits `JobCommand`s through
`vault.jobs.queue.JobQueue`; `vault worker` runs `vault.jobs.worker.run_worker`. Job
status lives in the journal, never in the queue. See docs/jobs.md.
"""
