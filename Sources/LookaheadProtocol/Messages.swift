/// The methods this protocol defines (docs/protocol.md). A request may name any string; this is
/// what the daemon serves and counts by name.
public enum Method: String, Sendable, CaseIterable {
    case ask, cancel, status, models, metrics, version
    case jobsSubmit = "jobs.submit"
    case jobsList = "jobs.list"
    case jobsGet = "jobs.get"
    case jobsResults = "jobs.results"
    case jobsCancel = "jobs.cancel"
}

/// A client's request: `{"id", "method", "params"}`. The id is the client's, echoed on every
/// frame that answers it; several requests may be in flight on one connection.
public struct Request: Sendable, Hashable {
    /// Longest string id: every frame that answers the request echoes it, so it must stay small
    /// beside any reply the daemon may have to send in its place (a `too_large` error).
    public static let maxIDBytes = 256

    /// A string or an integer.
    public var id: JSONValue
    public var method: String
    public var params: Params

    public init(id: JSONValue, method: String, params: Params = [:]) {
        precondition(Request.isValidID(id), "a request id is a string or an integer")
        self.id = id
        self.method = method
        self.params = params
    }

    /// Validates the envelope: `id` a string or integer, `method` a non-empty string, `params`
    /// absent, null or an object. Failures are `invalid_request` naming the field; the method
    /// itself is not judged here (`unknown_method` is the daemon's to say).
    public init(json: JSONObject) throws(ProtocolError) {
        let id = try Request.id(in: json)
        let method = try Envelope.string(json, "method")
        guard !method.isEmpty else { throw ProtocolError(.invalidRequest, "method must not be empty", field: "method") }
        var params = Params()
        switch json["params"] {
        case nil, .null?: break
        case .object(let object)?: params = Params(object)
        case let other?: throw Envelope.wrong("params", "an object", other)
        }
        // A misplaced parameter (`{"id": 1, "method": "ask", "prompt": …}`) is named, not ignored.
        if let stray = json.keys.first(where: { !["id", "method", "params"].contains($0) }) {
            throw ProtocolError(.invalidRequest, "unexpected field \(stray) (parameters go in params)", field: stray)
        }
        self.id = id
        self.method = method
        self.params = params
    }

    public var json: JSONObject { ["id": id, "method": .string(method), "params": .object(params.object)] }

    static func isValidID(_ id: JSONValue) -> Bool {
        switch id {
        case .string(let s): return s.utf8.count <= maxIDBytes
        case .int: return true
        default: return false
        }
    }

    static func id(in json: JSONObject) throws(ProtocolError) -> JSONValue {
        guard let id = json["id"] else { throw Envelope.missing("id") }
        if case .string(let s) = id, s.utf8.count > maxIDBytes {
            throw ProtocolError(.invalidRequest, "id is \(s.utf8.count) bytes; the limit is \(maxIDBytes)", field: "id")
        }
        guard isValidID(id) else { throw Envelope.wrong("id", "a string or an integer", id) }
        return id
    }
}

/// Progress on a request: `{"id", "event", …data}`. The event's own fields sit beside `id` and
/// `event` on the wire, so `data` may use neither name.
public struct Event: Sendable, Hashable {
    public var id: JSONValue
    public var event: String
    public var data: JSONObject

    public init(id: JSONValue, event: String, data: JSONObject = [:]) {
        precondition(data["id"] == nil && data["event"] == nil, "event data may not use the names id or event")
        self.id = id
        self.event = event
        self.data = data
    }

    public init(json: JSONObject) throws(ProtocolError) {
        id = try Request.id(in: json)
        event = try Envelope.string(json, "event")
        var data = json
        data["id"] = nil
        data["event"] = nil
        self.data = data
    }

    public var json: JSONObject {
        var object: JSONObject = ["id": id, "event": .string(event)]
        for (key, value) in data { object[key] = value }
        return object
    }
}

/// The successful end of a request: `{"id", "result"}`.
public struct ResultReply: Sendable, Hashable {
    public var id: JSONValue
    public var result: JSONValue

    public init(id: JSONValue, result: JSONValue) {
        self.id = id
        self.result = result
    }

    public init(json: JSONObject) throws(ProtocolError) {
        id = try Request.id(in: json)
        guard let result = json["result"] else { throw Envelope.missing("result") }
        self.result = result
    }

    public var json: JSONObject { ["id": id, "result": result] }
}

/// The failed end of a request: `{"id"?, "error": {"code", "message", "field"?}}`. Without an id
/// when the frame could not be read far enough to find one (bad framing, bad JSON, bad id).
public struct ErrorReply: Sendable, Hashable {
    public var id: JSONValue?
    public var error: ProtocolError

    public init(id: JSONValue?, error: ProtocolError) {
        self.id = id
        self.error = error
    }

    /// Answers a request that failed validation: with its id whenever it had a usable one.
    public init(replyingTo request: JSONObject, error: ProtocolError) {
        self.init(id: request["id"].flatMap { Request.isValidID($0) ? $0 : nil }, error: error)
    }

    public init(json: JSONObject) throws(ProtocolError) {
        id = json["id"] == nil || json["id"] == .null ? nil : try Request.id(in: json)
        guard let body = json["error"] else { throw Envelope.missing("error") }
        guard let object = body.objectValue else { throw Envelope.wrong("error", "an object", body) }
        error = try ProtocolError(json: object)
    }

    public var json: JSONObject {
        var object: JSONObject = [:]
        if let id { object["id"] = id }
        object["error"] = .object(error.json)
        return object
    }
}

/// Anything the daemon sends, as a client reads it.
public enum ServerMessage: Sendable, Hashable {
    case event(Event)
    case result(ResultReply)
    case error(ErrorReply)

    /// Told apart by which of `event`, `result` or `error` the object has: exactly one.
    public init(json: JSONObject) throws(ProtocolError) {
        let kinds = ["event", "result", "error"].filter { json[$0] != nil }
        guard kinds.count == 1 else {
            throw ProtocolError(.invalidRequest, "a server message has exactly one of event, result or error; got \(kinds.count)")
        }
        switch kinds[0] {
        case "event": self = .event(try Event(json: json))
        case "result": self = .result(try ResultReply(json: json))
        default: self = .error(try ErrorReply(json: json))
        }
    }

    public var json: JSONObject {
        switch self {
        case .event(let e): return e.json
        case .result(let r): return r.json
        case .error(let e): return e.json
        }
    }

    /// The request this answers; nil only for errors about the connection itself.
    public var id: JSONValue? {
        switch self {
        case .event(let e): return e.id
        case .result(let r): return r.id
        case .error(let e): return e.id
        }
    }

    /// A result or an error: nothing more will come for this id.
    public var isFinal: Bool {
        if case .event = self { return false }
        return true
    }
}
