import LookaheadProtocol

/// The two generation endpoints.
public enum Endpoint: String, Sendable, CaseIterable {
    case chat = "/v1/chat/completions"
    case completion = "/v1/completions"
}

/// A `POST /v1/chat/completions` or `/v1/completions` body, checked and turned into the native
/// `ask` params it amounts to: the daemon then judges them like any `ask` (AskPreparer), so the
/// two surfaces share every limit and default. Errors name the OpenAI parameter at fault.
public struct CompletionRequest: Sendable, Equatable {
    public var endpoint: Endpoint
    public var model: String?
    public var ask: Params
    public var stream: Bool
    /// `stream_options.include_usage`: one more chunk, with `usage` and no choices, before `[DONE]`.
    public var includeUsage: Bool
    /// Which of `max_tokens` and `max_completion_tokens` the body used, for errors about it.
    private var maxTokensName = "max_tokens"

    /// Our own knobs, in the optional `lookahead` object.
    public static let lookaheadKeys: Set<String> = ["mode", "gamma", "width", "verifier", "adaptive"]
    /// Parameters passed on as they are (sampling, and llama-server's `cache_prompt`); the native
    /// checks judge them.
    static let sampling = ["temperature", "top_p", "top_k", "seed", "stop", "cache_prompt"]
    /// Parameters OpenAI defines that change nothing here in the value given: accepted only with
    /// that value, so a request that counts on more hears so.
    static let neutral: [String: @Sendable (JSONValue) -> Bool] = [
        "n": { $0.intValue == 1 },
        "presence_penalty": { $0.doubleValue == 0 },
        "frequency_penalty": { $0.doubleValue == 0 },
        "logprobs": { $0 == .bool(false) },
        "echo": { $0 == .bool(false) },
        "best_of": { $0.intValue == 1 },
        "tools": { $0.arrayValue?.isEmpty == true },
        "tool_choice": { $0 == .string("none") || $0 == .string("auto") },
        "parallel_tool_calls": { $0.boolValue != nil },
        "response_format": { $0.objectValue?["type"] == .string("text") && $0.objectValue?.count == 1 },
    ]
    /// Bookkeeping fields a client may send; they do not change the answer.
    static let ignored: Set<String> = ["user", "metadata", "store", "service_tier"]

    public init(_ endpoint: Endpoint, body: JSONObject) throws(OpenAIError) {
        self.endpoint = endpoint
        let known = Set(["model", "max_tokens", "stream", "stream_options", "lookahead"])
            .union(Self.sampling).union(Self.neutral.keys).union(Self.ignored)
            .union(endpoint == .chat ? ["messages", "max_completion_tokens"] : ["prompt"])
        if let stray = body.keys.first(where: { !known.contains($0) }) {
            throw .invalid("unrecognized request argument supplied: \(stray)", param: stray)
        }
        for (key, accepts) in Self.neutral {
            if let value = body[key], !value.isNull, !accepts(value) {
                throw .invalid("\(key) = \(value) is not supported here; leave it out or send its default", param: key)
            }
        }
        model = try Self.read(body) { p throws(ProtocolError) in try p.optionalString("model") }
        var ask = Params()
        switch endpoint {
        case .chat:
            guard let messages = body["messages"], !messages.isNull else { throw .invalid("messages is required", param: "messages") }
            ask.object["messages"] = try Self.conversation(messages)
        case .completion:
            ask.object["prompt"] = try Self.prompt(body["prompt"])
            ask.object["template"] = .bool(false)
        }
        for key in Self.sampling { if let v = body[key], !v.isNull { ask.object[key] = v } }
        if let v = body["max_completion_tokens"], !v.isNull {
            ask.object["max_tokens"] = v
            maxTokensName = "max_completion_tokens"
        } else if let v = body["max_tokens"], !v.isNull {
            ask.object["max_tokens"] = v
        }
        if let knobs = body["lookahead"], !knobs.isNull {
            guard let object = knobs.objectValue else { throw .invalid("lookahead must be an object, got \(knobs.kind)", param: "lookahead") }
            for (key, value) in object {
                guard Self.lookaheadKeys.contains(key) else {
                    throw .invalid("lookahead.\(key) is not one of \(Self.lookaheadKeys.sorted().joined(separator: ", "))", param: "lookahead.\(key)")
                }
                ask.object[key] = value
            }
        }
        self.ask = ask
        stream = try Self.read(body) { p throws(ProtocolError) in try p.optionalBool("stream") } ?? false
        includeUsage = false
        if let options = body["stream_options"], !options.isNull {
            guard stream else { throw .invalid("stream_options is only allowed when stream is true", param: "stream_options") }
            guard let object = options.objectValue else {
                throw .invalid("stream_options must be an object, got \(options.kind)", param: "stream_options")
            }
            if let stray = object.keys.first(where: { $0 != "include_usage" }) {
                throw .invalid("stream_options.\(stray) is not supported", param: "stream_options.\(stray)")
            }
            includeUsage = try Self.read(object, in: "stream_options") { p throws(ProtocolError) in try p.optionalBool("include_usage") } ?? false
        }
    }

    /// The OpenAI name of a native parameter that a native check blamed.
    public func param(forNative field: String?) -> String? {
        guard let field else { return nil }
        let head = String(field.prefix { $0 != "[" && $0 != "." })
        if Self.lookaheadKeys.contains(head) { return "lookahead." + field }
        if head == "max_tokens" { return maxTokensName }
        if head == "template" || head == "prompt" { return endpoint == .chat ? "messages" : "prompt" }
        return field
    }

    /// OpenAI's messages → the native conversation: `developer` is a system turn, content may be
    /// an array of text parts; other part types, tool turns and tool calls are refused by name.
    static func conversation(_ value: JSONValue) throws(OpenAIError) -> JSONValue {
        guard case .array(let list) = value else { throw .invalid("messages must be an array, got \(value.kind)", param: "messages") }
        var turns: [JSONValue] = []
        for (i, element) in list.enumerated() {
            let at = "messages[\(i)]"
            guard let message = element.objectValue else { throw .invalid("\(at) must be an object, got \(element.kind)", param: at) }
            if let stray = message.keys.first(where: { !["role", "content", "name"].contains($0) }) {
                throw .invalid("\(at).\(stray) is not supported (no tool calls here)", param: "\(at).\(stray)")
            }
            guard let role = message["role"]?.stringValue else { throw .invalid("\(at).role must be a string", param: "\(at).role") }
            guard ["system", "developer", "user", "assistant"].contains(role) else {
                throw .invalid("\(at).role '\(role)' is not one of system, developer, user, assistant", param: "\(at).role")
            }
            let content = try text(of: message["content"] ?? .null, at: "\(at).content")
            turns.append(.object(["role": .string(role == "developer" ? "system" : role), "content": .string(content)]))
        }
        return .array(turns)
    }

    /// A message's content: a string, or an array of `{"type": "text", "text"}` parts joined.
    static func text(of value: JSONValue, at path: String) throws(OpenAIError) -> String {
        switch value {
        case .string(let s): return s
        case .array(let parts):
            var text = ""
            for (i, part) in parts.enumerated() {
                guard let object = part.objectValue, object["type"] == .string("text"), let t = object["text"]?.stringValue else {
                    throw .invalid("\(path)[\(i)] must be a text part {\"type\": \"text\", \"text\": …}; only text is supported", param: "\(path)[\(i)]")
                }
                text += t
            }
            return text
        default:
            throw .invalid("\(path) must be a string or an array of text parts, got \(value.kind)", param: path)
        }
    }

    /// `prompt`: a string, or an array holding exactly one (one completion per request here).
    static func prompt(_ value: JSONValue?) throws(OpenAIError) -> JSONValue {
        switch value {
        case .string?: return value!
        case .array(let list)? where list.count == 1 && list[0].stringValue != nil: return list[0]
        case nil, .null?: throw .invalid("prompt is required", param: "prompt")
        default: throw .invalid("prompt must be a string (or an array of one string)", param: "prompt")
        }
    }

    /// A typed read of `object` through the native `Params` accessors, their error named under
    /// `parent` (`stream_options.include_usage`).
    static func read<T>(_ object: JSONObject, in parent: String? = nil,
                        _ get: (Params) throws(ProtocolError) -> T) throws(OpenAIError) -> T {
        do { return try get(Params(object)) } catch {
            let prefix = parent.map { $0 + "." } ?? ""
            throw .invalid(prefix + error.message, param: error.field.map { prefix + $0 })
        }
    }
}
