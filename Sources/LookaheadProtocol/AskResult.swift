/// The result of an `ask` (docs/protocol.md), and of each batch line: plain values, so that the
/// protocol needs nothing from the engine. The daemon layer fills it from a generation.
public struct AskResult: Sendable, Equatable {
    public var text: String
    /// The reasoning before `</think>`, without the tags; empty when the model did not think.
    public var thinking: String
    public var answer: String
    public var tokens: Int
    public var promptTokens: Int
    /// Of the prompt's tokens, those whose KV came from the prefix cache (not prefilled).
    public var cachedTokens: Int
    /// `stop`, `length`, `context` or `cancelled`.
    public var finishReason: String
    public var mode: String
    public var stats: AskStats

    public init(text: String, thinking: String, answer: String, tokens: Int, promptTokens: Int, cachedTokens: Int,
                finishReason: String, mode: String, stats: AskStats) {
        self.text = text
        self.thinking = thinking
        self.answer = answer
        self.tokens = tokens
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
        self.finishReason = finishReason
        self.mode = mode
        self.stats = stats
    }

    public var json: JSONObject {
        ["text": .string(text), "thinking": .string(thinking), "answer": .string(answer), "tokens": JSONValue(tokens),
         "prompt_tokens": JSONValue(promptTokens), "cached_tokens": JSONValue(cachedTokens),
         "finish_reason": .string(finishReason), "mode": .string(mode), "stats": .object(stats.json)]
    }

    /// OpenAI's `usage`: for HTTP answers and every batch line.
    public var usage: JSONObject {
        ["prompt_tokens": JSONValue(promptTokens), "completion_tokens": JSONValue(tokens),
         "total_tokens": JSONValue(promptTokens + tokens),
         "prompt_tokens_details": .object(["cached_tokens": JSONValue(cachedTokens)])]
    }
}

/// What one request cost and gained, as `ask` reports it.
public struct AskStats: Sendable, Equatable {
    public struct Proposals: Sendable, Equatable {
        public var proposed = 0
        public var accepted = 0
        public init(proposed: Int = 0, accepted: Int = 0) {
            self.proposed = proposed
            self.accepted = accepted
        }
        var json: JSONValue { .object(["proposed": JSONValue(proposed), "accepted": JSONValue(accepted)]) }
    }

    /// How the request's pairs were decided, by the chain named `name`.
    public struct Verdicts: Sendable, Equatable {
        public var name = ""
        public var exactAccepts = 0
        public var semanticCalls = 0
        public var semanticAccepts = 0
        public var guardVetoes = 0
        public init() {}
    }

    public var committedSteps = 0
    public var acceptedSteps = 0
    public var rejectedSteps = 0
    public var undraftedSteps = 0
    public var identicalSteps = 0
    public var sameTextSteps = 0
    public var draftPauses = 0
    public var draftedTokens = 0
    public var alpha = 0.0
    public var c = 0.0
    public var draftPasses = 0
    public var targetPasses = 0
    public var draftSeconds = 0.0
    public var targetSeconds = 0.0
    public var verifySeconds = 0.0
    public var draftTokens = 0
    public var targetTokens = 0
    public var generatedTokens = 0
    public var wallSeconds = 0.0
    public var tokensPerSecond = 0.0
    public var ngram = Proposals()
    public var draftStep = Proposals()
    public var verifier = Verdicts()

    public init() {}

    public var json: JSONObject {
        [
            "committed_steps": JSONValue(committedSteps), "accepted_steps": JSONValue(acceptedSteps),
            "rejected_steps": JSONValue(rejectedSteps), "undrafted_steps": JSONValue(undraftedSteps),
            "identical_steps": JSONValue(identicalSteps),
            "same_text_steps": JSONValue(sameTextSteps), "draft_pauses": JSONValue(draftPauses),
            "drafted_tokens": JSONValue(draftedTokens), "alpha": .double(alpha), "c": .double(c),
            "draft_passes": JSONValue(draftPasses), "target_passes": JSONValue(targetPasses),
            "draft_seconds": .double(draftSeconds), "target_seconds": .double(targetSeconds),
            "verify_seconds": .double(verifySeconds), "draft_tokens": JSONValue(draftTokens),
            "target_tokens": JSONValue(targetTokens), "generated_tokens": JSONValue(generatedTokens),
            "wall_seconds": .double(wallSeconds), "tokens_per_second": .double(tokensPerSecond),
            "proposers": .object(["ngram": ngram.json, "draft_step": draftStep.json]),
            "verifier": .object([
                "name": .string(verifier.name), "exact_accepts": JSONValue(verifier.exactAccepts),
                "semantic_calls": JSONValue(verifier.semanticCalls),
                "semantic_accepts": JSONValue(verifier.semanticAccepts), "guard_vetoes": JSONValue(verifier.guardVetoes),
            ]),
        ]
    }
}
