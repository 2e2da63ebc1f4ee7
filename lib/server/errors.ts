// The server's errors: one stable `code` per kind, its HTTP status, and the two body shapes, ours
// ({ error: { code, message } }) and AUTOMATIC1111's FastAPI one ({ detail }) on /sdapi routes,
// which its clients parse.
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { isJsdError } from "../errors.js";

export const SERVER_ERRORS = {
  JSD_BAD_REQUEST: 400,
  JSD_INVALID_ARGUMENT: 400,
  JSD_UNAUTHORIZED: 401,
  JSD_NOT_FOUND: 404,
  JSD_CONFLICT: 409,
  JSD_PAYLOAD_TOO_LARGE: 413,
  JSD_QUEUE_FULL: 429,
  JSD_INTERNAL: 500,
  JSD_SHUTTING_DOWN: 503,
  JSD_UNAVAILABLE: 503,
} as const;

export type ServerErrorCode = keyof typeof SERVER_ERRORS;

export class ServerError extends Error {
  readonly status: number;
  constructor(
    readonly code: ServerErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ServerError";
    this.status = SERVER_ERRORS[code];
  }
}

/** A1111's routes answer in FastAPI's shapes. */
export function isA1111(request: FastifyRequest): boolean {
  return request.url.startsWith("/sdapi/");
}

interface FieldProblem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** Ajv's errors as FastAPI's `detail` list: where (`["body", "steps"]`), what, and the rule. */
export function fieldProblems(error: FastifyError): FieldProblem[] {
  const where = error.validationContext ?? "body";
  return (error.validation ?? []).map((v) => {
    const path = v.instancePath.split("/").filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    const missing = v.keyword === "required" ? [String((v.params as { missingProperty?: string }).missingProperty)] : [];
    return { loc: [where, ...path, ...missing], msg: v.message ?? "is not valid", type: `value_error.${v.keyword}` };
  });
}

/** A thrown value as (status, code, message): ours, Fastify's (body too large, bad JSON), the engine's, or a bug. */
export function classify(error: unknown): { status: number; code: string; message: string; headers: Record<string, string> } {
  if (error instanceof ServerError) return { status: error.status, code: error.code, message: error.message, headers: error.headers };
  const e = error as FastifyError;
  if (e?.code === "FST_ERR_CTP_BODY_TOO_LARGE") return { status: 413, code: "JSD_PAYLOAD_TOO_LARGE", message: "the request body is larger than the server accepts", headers: {} };
  if (error instanceof TypeError || error instanceof RangeError) return { status: 400, code: "JSD_INVALID_ARGUMENT", message: error.message, headers: {} };
  if (isJsdError(error)) {
    const status = error.code === "JSD_INVALID_ARGUMENT" ? 400 : 500;
    return { status, code: error.code, message: error.message, headers: {} };
  }
  if (typeof e?.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    // Fastify's own client errors: malformed JSON, an unsupported content type, an empty body.
    return { status: e.statusCode, code: "JSD_BAD_REQUEST", message: e.message, headers: {} };
  }
  return { status: 500, code: "JSD_INTERNAL", message: "internal error (see the server log)", headers: {} };
}

export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const e = error as FastifyError;
  if (e?.validation) {
    const problems = fieldProblems(e);
    if (isA1111(request)) return reply.status(422).send({ detail: problems });
    const message = problems.map((p) => `${p.loc.slice(1).join(".") || p.loc[0]}: ${p.msg}`).join("; ");
    return reply.status(400).send({ error: { code: "JSD_INVALID_ARGUMENT", message, details: problems } });
  }
  const c = classify(error);
  if (c.status >= 500) request.log.error({ err: error }, "request failed");
  reply.headers(c.headers).status(c.status);
  if (isA1111(request)) {
    // A1111's own refusals of a valid-looking request are 422 too (FastAPI's HTTPException).
    const status = c.code === "JSD_INVALID_ARGUMENT" ? 422 : c.status;
    return reply.status(status).send({ error: c.code, detail: c.message });
  }
  return reply.send({ error: { code: c.code, message: c.message } });
}
