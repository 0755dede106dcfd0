/// What one request cost and gained. Pass counts and times are the passes this session took part in.
public struct SessionStats: Sendable, Equatable {
    public var committedSteps = 0
    /// Draft steps accepted at the commit point, and positions where every candidate was rejected.
    public var acceptedDraftSteps = 0
    public var rejectedDraftSteps = 0
    /// Target steps committed with no finished draft step to compare (the target was faster).
    public var undraftedSteps = 0
    /// Pairs decided as token-identical, without a verifier call.
    public var identicalSteps = 0
    public var draftTokens = 0
    public var targetTokens = 0
    public var draftPasses = 0
    public var targetPasses = 0
    public var draftSeconds = 0.0
    public var targetSeconds = 0.0
    public var verifySeconds = 0.0
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

/// The paper's speed-up model (§3.2, Appendix B), used to choose γ and to report the expected gain.
public enum SpeedupModel {
    /// Asynchronous Lookahead Reasoning with acceptance α, draft/target cost c and depth γ:
    /// every target step verifies a run of accepted draft steps, the draft paying c per step.
    /// Expected committed steps per target step: (1 − α^(γ+1)) / (1 − α); time per target step
    /// grows with the drafts that must precede it only while γ·c exceeds 1 (the pipeline stalls).
    public static func asyncSpeedup(alpha: Double, c: Double, gamma: Int) -> Double {
        let steps = alpha >= 1 ? Double(gamma + 1) : (1 - pow(alpha, Double(gamma + 1))) / (1 - alpha)
        let cost = max(1, c * Double(gamma))
        return steps / cost
    }

    /// γ beyond which the async pipeline gains nothing: ⌈1/c⌉.
    public static func gammaCap(c: Double) -> Int { c <= 0 ? 16 : min(16, Int((1 / c).rounded(.up))) }
}

#if canImport(Glibc)
import Glibc
#endif
