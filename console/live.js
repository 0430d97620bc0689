// The console's live feed: one WebSocket to /api/live on which the browser is a device
// (docs/protocol.md section 5.14): Hello first, heartbeats, DELIVERED for every panic alert it
// receives. It reconnects by itself (0.5 s, doubling to 10 s, with jitter) and tells the page
// when it goes offline and comes back.
//
// Events (a LiveFeed is an EventTarget; each event's `detail`):
//   "online"   the Welcome (detail: the welcome)
//   "offline"  the socket closed (detail: null)
//   "message"  every envelope from the hub (detail: the envelope in canonical JSON)

export class LiveFeed extends EventTarget {
  constructor(capabilities = ["alerts", "sightings", "board"]) {
    super();
    this.capabilities = capabilities;
    this.socket = null;
    this.online = false;
    this.nextMsgId = 1;
    this.backoffMs = 500;
    this.heartbeat = null;
    this.pending = new Map(); // msg_id -> {resolve, reject}
  }

  start() {
    const url = `wss://${location.host}/api/live`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.send({ hello: { protocol_version: 1, capabilities: this.capabilities,
                           software: "saferlink-console" } });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => this.closed(socket));
    socket.addEventListener("error", () => {});
  }

  closed(socket) {
    if (socket !== this.socket) return;
    clearInterval(this.heartbeat);
    this.heartbeat = null;
    const wasOnline = this.online;
    this.online = false;
    for (const { reject } of this.pending.values()) reject(new Error("the hub is offline"));
    this.pending.clear();
    if (wasOnline || this.backoffMs === 500) {
      this.dispatchEvent(new CustomEvent("offline", { detail: null }));
    }
    const delay = this.backoffMs * (0.5 + Math.random() * 0.5);
    this.backoffMs = Math.min(this.backoffMs * 2, 10000);
    setTimeout(() => this.start(), delay);
  }

  receive(text) {
    let envelope;
    try {
      envelope = JSON.parse(text);
    } catch {
      return;
    }
    if (envelope.welcome) {
      this.online = true;
      this.backoffMs = 500;
      const every = Number(envelope.welcome.heartbeat_interval_ms) || 15000;
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.send({ heartbeat: {} }), every);
      this.dispatchEvent(new CustomEvent("online", { detail: envelope.welcome }));
    }
    if (envelope.panic) {
      this.send({ status: { alert_id: envelope.panic.alert_id, status: "DELIVERED" } });
    }
    const replyTo = envelope.receipt?.in_reply_to ?? envelope.error?.in_reply_to ??
      envelope.query_result?.in_reply_to;
    if (replyTo !== undefined && this.pending.has(String(replyTo))) {
      const { resolve, reject } = this.pending.get(String(replyTo));
      this.pending.delete(String(replyTo));
      if (envelope.error) reject(new Error(envelope.error.message || envelope.error.code));
      else resolve(envelope);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: envelope }));
  }

  // Sends one envelope body (e.g. {status: {...}}); returns its msg_id (a string).
  send(body) {
    const msgId = String(this.nextMsgId++);
    const envelope = { msg_id: msgId, sent_at_ms: String(Date.now()), ...body };
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(envelope));
    } else {
      throw new Error("the hub is offline");
    }
    return msgId;
  }

  // Sends and waits for the hub's Receipt / QueryResult (resolves with the envelope) or Error
  // (rejects with its message). Messages answered otherwise (a Sighting's SightingAccepted)
  // are awaited with `message` events instead.
  request(body) {
    return new Promise((resolve, reject) => {
      try {
        const id = this.send(body);
        this.pending.set(id, { resolve, reject });
      } catch (error) {
        reject(error);
      }
    });
  }
}
