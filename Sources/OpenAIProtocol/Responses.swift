import LookaheadProtocol

/// The bodies of one completion's answer, whole or as stream chunks, in OpenAI's shapes. The
/// chat endpoint splits the reasoning into `reasoning_content` (ReasoningSplitter); the text
/// endpoint returns the text as generated.
public struct CompletionResponder: Sendable {
    public let endpoint: Endpoint
    public let id: String
    public let created: Int64
    public let model: String

    public init(endpoint: Endpoint, model: String, created: Int64, id: String? = nil) {
        self.endpoint = endpoint
        self.model = model
        self.created = created
        self.id = id ?? (endpoint == .chat ? "chatcmpl-" : "cmpl-") + Self.randomHex()
    }

    private var object: String { endpoint == .chat ? "chat.completion" : "text_completion" }
    private var chunkObject: String { endpoint == .chat ? "chat.completion.chunk" : "text_completion" }

    /// The whole answer.
    public func body(_ result: AskResult) -> JSONObject {
        let choice: JSONObject
        switch endpoint {
        case .chat:
            let (reasoning, content) = ReasoningSplitter.split(result.text)
            var message: JSONObject = ["role": "assistant", "content": .string(content)]
            if let reasoning { message["reasoning_content"] = .string(reasoning) }
            choice = ["index": 0, "message": .object(message), "logprobs": .null, "finish_reason": .string(Self.finishReason(result))]
        case .completion:
            choice = ["index": 0, "text": .string(result.text), "logprobs": .null, "finish_reason": .string(Self.finishReason(result))]
        }
        var body = envelope(object)
        body["choices"] = .array([.object(choice)])
        body["usage"] = .object(result.usage)
        body["lookahead"] = .object(lookahead(result))
        return body
    }

    /// The first chat chunk names the speaker; the text endpoint has none.
    public func roleChunk() -> JSONObject? {
        guard endpoint == .chat else { return nil }
        return chunk(["role": "assistant", "content": ""], finishReason: nil)
    }

    /// A chunk of new text: `delta.reasoning_content`/`delta.content` (chat) or `text`; nil when
    /// there is nothing to send.
    public func textChunk(_ delta: ReasoningSplitter.Delta) -> JSONObject? {
        guard !delta.isEmpty else { return nil }
        switch endpoint {
        case .chat:
            var d = JSONObject()
            if !delta.reasoning.isEmpty { d["reasoning_content"] = .string(delta.reasoning) }
            if !delta.content.isEmpty { d["content"] = .string(delta.content) }
            return chunk(d, finishReason: nil)
        case .completion:
            return chunk(text: delta.content, finishReason: nil)
        }
    }

    /// The last chunk with a choice: empty, with the finish reason.
    public func finalChunk(_ result: AskResult) -> JSONObject {
        switch endpoint {
        case .chat: return chunk([:], finishReason: Self.finishReason(result))
        case .completion: return chunk(text: "", finishReason: Self.finishReason(result))
        }
    }

    /// `stream_options.include_usage`: no choices, the usage and our statistics.
    public func usageChunk(_ result: AskResult) -> JSONObject {
        var body = envelope(chunkObject)
        body["choices"] = .array([])
        body["usage"] = .object(result.usage)
        body["lookahead"] = .object(lookahead(result))
        return body
    }

    private func chunk(_ delta: JSONObject, finishReason: String?) -> JSONObject {
        var body = envelope(chunkObject)
        body["choices"] = .array([.object(["index": 0, "delta": .object(delta), "logprobs": .null,
                                           "finish_reason": finishReason.map(JSONValue.string) ?? .null])])
        return body
    }

    private func chunk(text: String, finishReason: String?) -> JSONObject {
        var body = envelope(chunkObject)
        body["choices"] = .array([.object(["index": 0, "text": .string(text), "logprobs": .null,
                                           "finish_reason": finishReason.map(JSONValue.string) ?? .null])])
        return body
    }

    private func envelope(_ object: String) -> JSONObject {
        ["id": .string(id), "object": .string(object), "created": .int(created), "model": .string(model)]
    }

    /// What the speculation did for this request: the mode and the native `stats`.
    private func lookahead(_ result: AskResult) -> JSONObject {
        ["mode": .string(result.mode), "stats": .object(result.stats.json)]
    }

    /// `length` covers both the token limit and a full context window.
    static func finishReason(_ result: AskResult) -> String {
        result.finishReason == "stop" ? "stop" : "length"
    }

    static func randomHex() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<3).map { _ in
            let s = String(g.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined().prefix(24).description
    }
}

/// `GET /v1/models`.
public enum ModelList {
    public static func body(ids: [String], created: Int64) -> JSONObject {
        ["object": "list", "data": .array(ids.map {
            .object(["id": .string($0), "object": "model", "created": .int(created), "owned_by": "lookaheadd"])
        })]
    }
}
