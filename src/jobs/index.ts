/** The job queue: customization jobs on BullMQ (Redis), run by `tailor worker` processes. */
export * from './config.ts';
export * from './types.ts';
export { JobQueue, CANCEL_EVENT, type JobInfo, type JobDetails, type JobStep, type SubmitOptions } from './queue.ts';
export { startWorker, type JobWorker, type WorkerOptions } from './worker.ts';
