import Llama
import Lookahead
import LookaheadProtocol
import StepBatcher

/// An `ask` checked and tokenised: what the batcher is handed.
public struct PreparedAsk: Sendable {
    public var prompt: Prompt
    public var config: SessionConfig
    /// The chain that judges it: the one it named, else the daemon's.
    public var verifier: VerifierKind
}

/// Turns `ask` params into a session's prompt and settings, checked field by field with errors
/// that name the field: for an `ask` on a connection and for every line of a batch job alike.
public struct AskPreparer: Sendable {
    static let params: Set<String> = ["prompt", "messages", "mode", "gamma", "width", "verifier", "temperature", "top_p",
                                      "top_k", "seed", "max_tokens", "adaptive", "stop", "template", "cache_prompt"]
    /// Stop strings a request may give, and the longest one, in bytes.
    static let maxStops = 16
    static let maxStopBytes = 256

    let defaults: SessionConfig
    let maxTokensLimit: Int
    let maxPromptTokens: Int
    /// Longer prompts are refused before tokenising: they cannot fit `maxPromptTokens`.
    let maxPromptBytes: Int
    let defaultVerifier: VerifierKind
    let capacity: Capacity
    let tokenize: @Sendable (PromptInput) throws -> Prompt

    /// `maxBytesPerToken`: the vocabulary's bound (`Vocab.maxBytesPerToken`), nil when it has none.
    public init(defaults: SessionConfig, maxTokensLimit: Int, maxPromptTokens: Int, maxBytesPerToken: Int?,
                defaultVerifier: VerifierKind, capacity: Capacity, tokenize: @escaping @Sendable (PromptInput) throws -> Prompt) {
        self.defaults = defaults
        self.maxTokensLimit = maxTokensLimit
        self.maxPromptTokens = maxPromptTokens
        let (bytes, overflow) = maxPromptTokens.multipliedReportingOverflow(by: maxBytesPerToken ?? Int.max)
        self.maxPromptBytes = overflow ? Int.max : bytes
        self.defaultVerifier = defaultVerifier
        self.capacity = capacity
        self.tokenize = tokenize
    }

    /// Prompt and settings, and the check that the batcher could ever admit them.
    public func prepare(_ params: Params) throws(ProtocolError) -> PreparedAsk {
        let config = try sessionConfig(params)
        let prompt = try promptTokens(params)
        do {
            try capacity.check(promptTokens: prompt.cells, config: config)
        } catch {
            throw ProtocolError(error: error, field: "prompt")
        }
        return PreparedAsk(prompt: prompt, config: config, verifier: config.verifier ?? defaultVerifier)
    }

    /// The session settings an `ask` asks for.
    func sessionConfig(_ params: Params) throws(ProtocolError) -> SessionConfig {
        try params.rejectUnknown(allowed: AskPreparer.params)
        var c = defaults
        if let mode: Mode = try params.optionalChoice("mode", as: Mode.self) { c.mode = mode }
        func ranged(_ key: String, _ range: ClosedRange<Int>) throws(ProtocolError) -> Int? {
            guard let v = try params.optionalInt(key) else { return nil }
            guard range.contains(v) else {
                throw ProtocolError(.invalidParams, "\(key) must be in \(range.lowerBound)...\(range.upperBound), got \(v)", field: key)
            }
            return v
        }
        if let g = try ranged("gamma", 0...16) { c.gamma = g }
        if let w = try ranged("width", 1...2) { c.width = w }
        if let m = try ranged("max_tokens", 1...maxTokensLimit) { c.maxTokens = m }
        if let a = try params.optionalBool("adaptive") { c.adaptive = a }
        if let cache = try params.optionalBool("cache_prompt") { c.cachePrompt = cache }
        if let v = try params.optionalString("verifier") {
            // random:P sets α for synthetic benchmarks; it is never a request's choice.
            guard let kind = VerifierKind(rawValue: v), kind != .random else {
                throw ProtocolError(.invalidParams, "verifier must be exact, normalized, embedding or judge, got '\(v)'", field: "verifier")
            }
            guard capacity.verifiers.contains(kind) else {
                let loaded = capacity.verifiers.map(\.rawValue).sorted().joined(separator: ", ")
                throw ProtocolError(.invalidParams, "verifier '\(v)' is not loaded by this daemon (it has \(loaded))", field: "verifier")
            }
            c.verifier = kind
        }
        let temperature = try params.optionalDouble("temperature") ?? 0
        guard temperature >= 0, temperature <= 10 else {
            throw ProtocolError(.invalidParams, "temperature must be in 0...10, got \(temperature)", field: "temperature")
        }
        let topP = try params.optionalDouble("top_p") ?? 0.95
        guard topP > 0, topP <= 1 else { throw ProtocolError(.invalidParams, "top_p must be in (0, 1], got \(topP)", field: "top_p") }
        let topK = try ranged("top_k", 1...1000) ?? 20
        let seed = try ranged("seed", 0...Int.max) ?? 0
        c.stop = try Self.stops(params)
        c.sampling = temperature > 0
            ? SamplingParams(temperature: Float(temperature), topK: topK, topP: Float(topP), seed: UInt64(seed))
            : .greedy
        return c
    }

    /// `stop`: a string or an array of strings, each non-empty.
    static func stops(_ params: Params) throws(ProtocolError) -> [String] {
        guard let value = params["stop"] else { return [] }
        let list: [JSONValue]
        switch value {
        case .string: list = [value]
        case .array(let a): list = a
        default: throw ProtocolError(.invalidParams, "stop must be a string or an array of strings, got \(value.kind)", field: "stop")
        }
        guard list.count <= maxStops else {
            throw ProtocolError(.invalidParams, "stop has \(list.count) strings; the limit is \(maxStops)", field: "stop")
        }
        var stops: [String] = []
        for (i, element) in list.enumerated() {
            let field = value.stringValue == nil ? "stop[\(i)]" : "stop"
            guard let s = element.stringValue, !s.isEmpty, s.utf8.count <= maxStopBytes else {
                throw ProtocolError(.invalidParams, "\(field) must be a non-empty string of at most \(maxStopBytes) bytes", field: field)
            }
            stops.append(s)
        }
        return stops
    }

    func promptTokens(_ params: Params) throws(ProtocolError) -> Prompt {
        let input = try Self.promptInput(params)
        let field = params["messages"] == nil ? "prompt" : "messages"
        guard input.textBytes <= maxPromptBytes else {
            throw ProtocolError(.tooLarge, "the prompt is \(input.textBytes) bytes, more than the \(maxPromptTokens) tokens of max_prompt_tokens can hold",
                                field: field)
        }
        let prompt: Prompt
        do { prompt = try tokenize(input) } catch {
            throw ProtocolError(.invalidParams, "the prompt could not be tokenised: \(error)", field: field)
        }
        // A draft of another vocabulary may need more tokens than the target: the longer counts.
        guard prompt.cells <= maxPromptTokens else {
            throw ProtocolError(.tooLarge, "prompt is \(prompt.cells) tokens; the limit is \(maxPromptTokens)", field: field)
        }
        return prompt
    }

    /// `prompt` (a string; `template: false` takes it as it is, without the chat template) or
    /// `messages` (`[{"role", "content"}]`, system/user/assistant, ending with the user's turn),
    /// checked with errors naming the element at fault.
    static func promptInput(_ params: Params) throws(ProtocolError) -> PromptInput {
        switch (params["prompt"], params["messages"]) {
        case (nil, nil):
            throw ProtocolError(.invalidParams, "prompt (a string) or messages (an array of {role, content}) is required", field: "prompt")
        case (_?, _?):
            throw ProtocolError(.invalidParams, "give prompt or messages, not both", field: "messages")
        case (_?, nil):
            let prompt = try params.string("prompt")
            guard !prompt.trimmingWhitespace.isEmpty else {
                throw ProtocolError(.invalidParams, "prompt must not be empty", field: "prompt")
            }
            return try params.optionalBool("template") == false ? .raw(prompt) : .text(prompt)
        case (nil, let value?):
            guard params["template"] == nil else {
                throw ProtocolError(.invalidParams, "template applies to prompt; messages always use the chat template", field: "template")
            }
            return .chat(try ChatTurn.conversation(value).map { ChatMessage(role: $0.role.rawValue, content: $0.content) })
        }
    }
}

extension ProtocolError {
    init(error: BatcherError, field: String?) {
        switch error {
        case .cancelled: self.init(.cancelled, "cancelled")
        case .shuttingDown: self.init(.busy, "the daemon is shutting down")
        case .tooLarge(let m): self.init(.tooLarge, m, field: field)
        case .unavailable(let m): self.init(.invalidParams, m)
        case .busy(let m): self.init(.busy, m)
        case .engine(let m): self.init(.internal, "engine failure: \(m)")
        }
    }
}
