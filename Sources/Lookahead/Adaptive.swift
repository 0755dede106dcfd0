/// What a model pass costs for the tokens it carries, fit online: T(n) ≈ base + perToken · n, by
/// least squares with exponential forgetting, so the fit follows load and context growth.
/// Prefill-sized passes are left out: proposals and branches are decided at decode sizes, where a
/// token costs most (on 2 CPU cores a 4-token pass cost ≈ 2× a 1-token pass; on a GPU ≈ 1×).
public struct PassCost: Sendable, Equatable {
    public static let decodeSizes = 1...24
    private var weight = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
    /// The last slope fitted from passes of different sizes: a run of equal-sized passes (plain
    /// decoding, proposals switched off) carries no slope information, so the last one stands.
    private var slope: Double?
    private let forgetting: Double

    public init(forgetting: Double = 0.98) { self.forgetting = forgetting }

    public mutating func record(tokens n: Int, seconds: Double) {
        guard PassCost.decodeSizes.contains(n), seconds > 0 else { return }
        let x = Double(n)
        weight = weight * forgetting + 1
        sx = sx * forgetting + x
        sy = sy * forgetting + seconds
        sxx = sxx * forgetting + x * x
        sxy = sxy * forgetting + x * seconds
        let mx = sx / weight, my = sy / weight
        let varX = sxx / weight - mx * mx
        if varX > 0.05 { slope = max(0, (sxy / weight - mx * my) / varX) }
    }

    /// Seconds of a pass of `n` tokens; nil before any pass was seen.
    public func seconds(tokens n: Int) -> Double? {
        guard weight > 0 else { return nil }
        let mx = sx / weight, my = sy / weight
        let b = slope ?? 0
        return max(1e-9, my + b * (Double(n) - mx))
    }

    /// What one more token adds to a pass; nil until passes of two sizes were seen.
    public var perToken: Double? { weight > 0 ? slope : nil }
}

/// Both models' pass costs, measured by the tick loop and read by every session when it plans.
public struct EngineCosts: Sendable, Equatable {
    public var target = PassCost()
    public var draft = PassCost()
    public init() {}

    /// c per token: a draft token against a target token, both decoded alone.
    public var draftRatio: Double? {
        guard let d = draft.seconds(tokens: 1), let t = target.seconds(tokens: 1) else { return nil }
        return d / t
    }
}

/// How often one proposer's tokens are taken, modelled as a geometric run: each proposed token is
/// taken with probability `rate` when the ones before it were. Counts decay toward a uniform prior
/// at every chance to propose, so a proposer that stopped paying is tried again later.
struct AcceptanceEstimate: Sendable {
    private var taken = 1.0, refused = 1.0
    var rate: Double { taken / (taken + refused) }

    mutating func forget(_ factor: Double = 0.99) {
        taken = 1 + (taken - 1) * factor
        refused = 1 + (refused - 1) * factor
    }

    /// A run of `proposed` tokens of which the first `accepted` were taken.
    mutating func record(proposed: Int, accepted: Int) {
        taken += Double(accepted)
        if accepted < proposed { refused += 1 }
    }
}

/// Where a branch's proposed tokens come from; n-gram matches are told apart by length, because a
/// one-token match is taken far less often than a three-token one.
enum ProposalSource: Hashable, Sendable {
    case draftStep
    case ngram(Int)

    var proposer: Proposer {
        switch self {
        case .draftStep: return .draftStep
        case .ngram: return .ngram
        }
    }
}

enum ProposalPolicy {
    /// A proposal must beat its cost by this much: the linear fit understates what the first extra
    /// token of a small pass costs, and a near-even bet is not worth the pass.
    static let margin = 1.25

    /// How many of `available` proposed tokens earn their place in a pass: the i-th does when the
    /// chance it is taken (rate^i) times the pass it saves exceeds what it adds to this pass.
    static func worthwhile(available: Int, rate: Double, costs: EngineCosts) -> Int {
        guard available > 0 else { return 0 }
        guard let extra = costs.target.perToken, let saved = costs.target.seconds(tokens: 1) else { return available }
        var k = 0, chance = 1.0
        while k < available {
            chance *= rate
            if chance * saved <= margin * extra { break }
            k += 1
        }
        return k
    }
}

/// Whether drafting pays for one session: the realised cost of every committed token while the
/// draft runs (this session's share of draft, target and verify passes) against what plain
/// decoding costs per token (a one-token target pass). A window that loses switches drafting off
/// for the ledger's back-off, then it is probed again — so a session is never much slower than
/// `ar`, and still finds the stretches where drafts are taken.
struct DraftGovernor: Sendable {
    /// A window closes at the first commit with at least this much behind it: commits are where
    /// accepted draft steps pay, so a window cut mid-step would count their cost and not their gain.
    static let windowSteps = 1
    static let windowTokens = 16

    private(set) var speculating = true
    private var windowStart: (seconds: Double, tokens: Int, steps: Int)?
    private var pausedSteps = 0

    mutating func pause(steps: Int) {
        speculating = false
        pausedSteps = steps
    }

    /// Opens a window between commits (the first once the prompt's prefill is paid, so it is never
    /// counted against the draft).
    mutating func begin(spentSeconds: Double, committedTokens: Int, committedSteps: Int) {
        if speculating, windowStart == nil { windowStart = (spentSeconds, committedTokens, committedSteps) }
    }

    /// Called after each committed step with the session's running totals; returns whether the
    /// session should switch state (the caller drops or restarts the draft chain).
    mutating func observe(spentSeconds: Double, committedTokens: Int, committedSteps: Int,
                          costs: EngineCosts, ledger: inout SpeculationLedger) -> Bool {
        if !speculating {
            pausedSteps -= 1
            guard pausedSteps <= 0 else { return false }
            speculating = true
            windowStart = nil
            return true
        }
        // After a pause the window opens at the commit that resumed drafting.
        guard let start = windowStart else {
            windowStart = (spentSeconds, committedTokens, committedSteps)
            return false
        }
        let tokens = committedTokens - start.tokens, steps = committedSteps - start.steps
        guard steps >= DraftGovernor.windowSteps, tokens >= DraftGovernor.windowTokens,
              let plain = costs.target.seconds(tokens: 1) else { return false }
        windowStart = (spentSeconds, committedTokens, committedSteps)
        guard let pause = ledger.close(window: (spentSeconds - start.seconds) / Double(tokens) / plain) else { return false }
        self.pause(steps: pause)
        return true
    }
}

/// What drafting has been earning on this machine, across sessions: the cost ratio of the windows
/// sessions closed (speculative over plain decoding, per committed token) and the back-off for
/// the next loss. The costs are the machine's, so a session that joins while drafting is losing
/// starts with its draft paused rather than paying for a first window of its own.
public struct SpeculationLedger: Sendable, Equatable {
    static let firstBackoff = 8
    static let maxBackoff = 256

    /// The last windows' cost ratio, smoothed; nil before any window closed.
    public private(set) var ratio: Double?
    public private(set) var windows = 0
    /// Steps a session pauses its draft after the next losing window; doubles with each loss in a
    /// row, back to the first on a win.
    public private(set) var backoff = SpeculationLedger.firstBackoff

    public init() {}

    /// Records a closed window; returns the steps to pause for when it lost.
    mutating func close(window r: Double) -> Int? {
        ratio = ratio.map { 0.7 * $0 + 0.3 * r } ?? r
        windows += 1
        guard r > 1 else {
            backoff = SpeculationLedger.firstBackoff
            return nil
        }
        defer { backoff = min(SpeculationLedger.maxBackoff, backoff * 2) }
        return backoff
    }

    /// The last window lost: sessions join paused.
    public var losing: Bool { backoff > SpeculationLedger.firstBackoff }
}
