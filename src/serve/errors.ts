/** Errors the server answers with an HTTP status; everything else that escapes a handler is a 500. */
import { TailorError, type ErrorContext } from './library.ts';

/** A request the server refuses or cannot answer, with the status code and headers to send. */
export class HttpError extends TailorError {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  constructor(statusCode: number, message: string, context: ErrorContext = {}, headers: Record<string, string> = {}) {
    super(message, context);
    this.statusCode = statusCode;
    this.headers = headers;
  }
}

/** The batch queue of a model is full: back-pressure, answered 503 with Retry-After. */
export class QueueFullError extends HttpError {
  constructor(model: string, limit: number) {
    super(
      503,
      `model '${model}' is overloaded: its queue holds the maximum of ${limit} texts (--max-queue); retry later`,
      { field: 'max-queue', value: String(limit) },
      { 'retry-after': '1' },
    );
  }
}
