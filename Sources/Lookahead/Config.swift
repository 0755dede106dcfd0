import Llama

/// The four ways a request can be decoded. All run through `LookaheadSession`, so comparisons
/// between them measure the algorithm, not different code.
public enum Mode: String, CaseIterable, Sendable, Codable {
    case ar                         // target only
    case sd = "sd"                  // target + token-level speculation (n-gram lookup)
    case lookahead                  // step-level speculation with the draft model
    case lookaheadSD = "lookahead+sd" // both: n-gram and draft-step lookup inside every step

    public var usesDraft: Bool { self == .lookahead || self == .lookaheadSD }
    public var speculatesTokens: Bool { self == .sd || self == .lookaheadSD }
}

/// Per-request settings of the algorithm. Defaults follow the reference implementation
/// (γ = 4, W = 1, 100-token steps, "\n\n" delimiter).
public struct SessionConfig: Sendable, Equatable {
    public var mode: Mode = .lookaheadSD
    /// γ: draft steps kept ahead of the committed text.
    public var gamma: Int = 4
    /// W: draft candidates per position (1 or 2); the first one the verifier accepts wins.
    public var width: Int = 1
    public var rules = StepRules()
    public var sampling: SamplingParams = .greedy
    public var maxTokens: Int = 512
    /// Draft passes per tick. The asynchronous pipeline only pays when the draft stays ahead of
    /// the target; one draft token per target token never gets ahead (c < 1 means the draft can
    /// afford more). ⌈1/c⌉ keeps pace with the target.
    public var draftTokensPerTick: Int = 2
    /// Prompt tokens a session puts in one pass while it prefills: a long prompt takes several
    /// passes, and the other sessions keep decoding in each of them (chunked prefill).
    public var prefillChunk: Int = 256
    /// Tokens a token-level proposer may put in one target pass for one branch (k).
    public var proposalTokens: Int = 4
    /// n-gram prompt lookup: longest and shortest suffix matched (the paper: 1 on GSM8K). The
    /// longest match found is proposed; acceptance is tracked per match length, so the adaptive
    /// policy learns that a 3-token match is worth more than a 1-token one.
    public var ngramMax: Int = 3
    public var ngramMin: Int = 1
    /// The verifier chain this request is judged by; nil: the engine's configured one.
    public var verifier: VerifierKind?
    /// The answer after `</think>` is written by the target alone, never paraphrased.
    public var answerByTargetOnly = true
    /// Let measured costs steer the speculation: proposals only as long as their acceptance pays
    /// for their place in the pass, γ capped at ⌈1/c⌉, drafting paused while it loses to plain
    /// decoding. Only speed depends on it in `ar`, `sd` and under the exact verifier (greedy, or
    /// sampling keyed by position); with a semantic verifier, which draft steps finish in time to
    /// be compared — and so the text — can.
    public var adaptive = true
    /// Strings that end the answer (the batcher watches for them, StopScan); the text stops
    /// before the first one.
    public var stop: [String] = []
    /// Start from the longest cached prefix of the prompt, and leave this request's cells to the
    /// prefix cache when it ends (the batcher's `PrefixCache`; llama-server's `cache_prompt`).
    public var cachePrompt = true

    public init(mode: Mode = .lookaheadSD) { self.mode = mode }

    /// Sequence ids one session holds in the target context: the root and γ·W branches.
    public var targetSequences: Int { mode.usesDraft ? 1 + gamma * width : 1 }
    public var draftSequences: Int { mode.usesDraft ? width : 0 }

    public func validate() throws {
        func bad(_ field: String, _ why: String) -> SessionError { .invalidConfig(field: field, reason: why) }
        guard (0...16).contains(gamma) else { throw bad("gamma", "must be 0...16, got \(gamma)") }
        guard (1...2).contains(width) else { throw bad("width", "must be 1 or 2, got \(width)") }
        guard maxTokens > 0 else { throw bad("max_tokens", "must be positive, got \(maxTokens)") }
        guard rules.maxTokens > 0 else { throw bad("step_tokens", "must be positive") }
        guard !rules.delimiter.isEmpty else { throw bad("step_delimiter", "must not be empty") }
        guard (1...16).contains(draftTokensPerTick) else { throw bad("draft_tokens_per_tick", "must be 1...16") }
        guard (0...32).contains(proposalTokens) else { throw bad("proposal_tokens", "must be 0...32") }
        guard prefillChunk > 0 else { throw bad("prefill_chunk", "must be positive, got \(prefillChunk)") }
        guard sampling.temperature >= 0, sampling.topP > 0, sampling.topP <= 1 else {
            throw bad("temperature/top_p", "temperature ≥ 0 and 0 < top_p ≤ 1 required")
        }
    }
}

public enum SessionError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(field: String, reason: String)
    case promptTooLong(tokens: Int, limit: Int)
    case emptyPrompt

    public var description: String {
        switch self {
        case .invalidConfig(let f, let r): return "invalid \(f): \(r)"
        case .promptTooLong(let t, let l): return "prompt of \(t) tokens does not fit the context (limit \(l))"
        case .emptyPrompt: return "prompt is empty"
        }
    }
}
