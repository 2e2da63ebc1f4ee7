// Server-Sent Events from a fetch Response: the reader the page follows a job's events with.

/**
 * Reads a text/event-stream response (fetch, so that it can carry the Authorization header,
 * which EventSource cannot) and yields { event, data, id } per message. Lines may end in LF, CR
 * or CRLF; messages and lines may be split anywhere across chunks.
 */
export async function* readEventStream(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = [];
  let event = "";
  let id = "";
  const messages = [];

  const line = (text) => {
    if (text === "") {
      if (data.length > 0) messages.push({ event: event || "message", data: data.join("\n"), id });
      data = [];
      event = "";
      return;
    }
    if (text.startsWith(":")) return; // comment (keep-alive)
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  };

  const feed = (final) => {
    const breaks = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = breaks.exec(buffer)) !== null) {
      // A CR at the very end may be the first half of a CRLF still on its way.
      if (match[0] === "\r" && match.index === buffer.length - 1 && !final) break;
      line(buffer.slice(start, match.index));
      start = breaks.lastIndex;
    }
    buffer = buffer.slice(start);
  };

  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      feed(false);
      while (messages.length > 0) yield messages.shift();
    }
    buffer += decoder.decode();
    feed(true);
    while (messages.length > 0) yield messages.shift();
  } finally {
    reader.releaseLock();
  }
}
