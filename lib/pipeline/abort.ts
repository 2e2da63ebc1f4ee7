// What an aborted generate() rejects with, wherever the abort is noticed (waiting in the model's
// queue, between steps, or inside a network call that the abort interrupted): the signal's own
// reason when it is an Error, else a DOMException named AbortError, as fetch() and Node's own APIs do.
export function abortError(signal: AbortSignal): unknown {
  return signal.reason instanceof Error ? signal.reason : new DOMException("The generation was aborted", "AbortError");
}
