/// What one request cost and gained. Pass counts and times are the passes this session took part in.
public struct SessionStats: Sendable, Equatable {
    public var promptTokens = 0
    /// Prompt tokens whose KV came from the prefix cache instead of a prefill.
    public var cachedPromptTokens = 0
    public var committedSteps = 0
    /// Draft steps accepted at the commit point, and positions where every candidate was rejected.
    public var acceptedDraftSteps = 0
    public var rejectedDraftSteps = 0
    /// Target steps committed with no finished draft step to compare (the target was faster).
    public var undraftedSteps = 0
    /// Pairs decided as token-identical, without a verifier call.
    public var identicalSteps = 0
    /// Positions whose accepted draft step had the target's text in other tokens: the target's own
    /// step was committed instead (typical of a draft with another vocabulary).
    public var sameTextOtherTokens = 0
    /// Times the adaptive governor switched drafting off because it cost more than it saved.
    public var draftPauses = 0
    /// Committed tokens of steps committed while the draft was running (the rest: plain decoding).
    public var draftedTokens = 0
    public var draftTokens = 0
    public var targetTokens = 0
    public var draftPasses = 0
    public var targetPasses = 0
    public var draftSeconds = 0.0
    public var targetSeconds = 0.0
    public var verifySeconds = 0.0
    /// Verifier calls for this session's pairs, by the stage that decided them.
    public var verdicts: [StepVerdict: Int] = [:]
    /// Token-level proposals made (runs of proposed tokens), the tokens in them, and those taken.
    public var proposalRuns = 0
    public var proposed: [Proposer: Int] = [:]
    public var acceptedProposals: [Proposer: Int] = [:]
    public var wallSeconds = 0.0
    public var generatedTokens = 0

    public init() {}

    /// α: the share of verified draft steps that were accepted.
    public var alpha: Double {
        let n = acceptedDraftSteps + rejectedDraftSteps
        return n == 0 ? 0 : Double(acceptedDraftSteps) / Double(n)
    }

    /// c: the cost of a draft pass relative to a target pass, as measured.
    public var costRatio: Double {
        guard draftPasses > 0, targetPasses > 0, targetSeconds > 0 else { return 0 }
        return (draftSeconds / Double(draftPasses)) / (targetSeconds / Double(targetPasses))
    }

    public var tokensPerSecond: Double { wallSeconds > 0 ? Double(generatedTokens) / wallSeconds : 0 }
}

/// The paper's speed-up model (§3.2–3.3, Appendix B): used to choose γ and to report the gain a
/// measured α and c predict.
public enum SpeedupModel {
    /// Asynchronous Lookahead Reasoning with step acceptance α, draft/target cost ratio c and depth γ.
    /// Beyond γ* = ⌈1/c⌉ the draft cannot fill the window and the curve is flat (Lemma 2).
    public static func asyncSpeedup(alpha a: Double, c: Double, gamma k: Int) -> Double {
        guard k >= 1 else { return 1 }
        if k >= gammaCap(c: c) || a >= 1 { return 1 / (c + (1 - c) * (1 - a)) }
        let ak = pow(a, Double(k))
        return (1 - ak) / ((1 - a) + c * (a - ak * a - Double(k) * (1 - a) * ak))
    }

    /// Synchronous Lookahead Reasoning: γ steps verified in one parallel target step.
    public static func syncSpeedup(alpha a: Double, c: Double, gamma k: Int) -> Double {
        a >= 1 ? Double(k) / (1 - c + c * Double(k)) : (1 - pow(a, Double(k))) / ((1 - a) * (1 - c + c * Double(k)))
    }

    /// Token-level speculation (Leviathan et al., Thm 3.8) with γ drafted tokens.
    public static func tokenSpeedup(alpha a: Double, c: Double, gamma k: Int) -> Double {
        a >= 1 ? Double(k + 1) / (1 + c * Double(k)) : (1 - pow(a, Double(k + 1))) / ((1 - a) * (1 + c * Double(k)))
    }

    /// γ beyond which the async pipeline gains nothing: ⌈1/c⌉.
    public static func gammaCap(c: Double) -> Int { c <= 1.0 / 16 ? 16 : Int((1 / c).rounded(.up)) }
}

#if canImport(Glibc)
import Glibc
#endif
