import Foundation
import Lookahead
import LookaheadProtocol

/// One problem decoded in one mode, graded.
public struct RunRecord: Sendable, Equatable {
    public var problem: Int
    public var mode: Mode
    /// The graded answer, normalised; nil when the text commits to none.
    public var answer: String?
    public var reference: String
    public var correct: Bool
    public var finishReason: String
    /// Wall time and generated tokens included.
    public var stats: SessionStats

    public init(problem: Problem, mode: Mode, text: String, finishReason: String, stats: SessionStats) {
        self.problem = problem.line
        self.mode = mode
        answer = Grader.answer(of: text)
        reference = problem.reference
        correct = Grader.isCorrect(answer, reference: problem.reference)
        self.finishReason = finishReason
        self.stats = stats
    }

    /// The progress line the bench prints after each run.
    public var progressLine: String {
        let s = stats
        var line = "#\(problem) \(mode.rawValue.padded(12)) \(s.generatedTokens) tok  \(fixed(s.wallSeconds, 1)) s  "
            + "\(fixed(s.tokensPerSecond, 1)) tok/s"
        if mode.usesDraft {
            line += "  α \(fixed(s.alpha, 2)) (\(s.acceptedDraftSteps)/\(s.acceptedDraftSteps + s.rejectedDraftSteps))"
        }
        return line + "  \(correct ? "✓" : "✗") \(answer ?? "—") (ref \(reference))"
    }
}

/// Token-level proposals one proposer made and the target kept.
public struct ProposalCount: Sendable, Equatable {
    public var proposed = 0
    public var accepted = 0
    public var rate: Double? { proposed == 0 ? nil : Double(accepted) / Double(proposed) }
}

/// One mode's runs pooled: sums, not averages of per-problem ratios, so long problems weigh as much
/// as the time they take.
public struct ModeSummary: Sendable, Equatable {
    public static let proposers: [Proposer] = [.ngram, .draftStep]

    public var mode: Mode
    public var n = 0
    public var correct = 0
    public var wallSeconds = 0.0
    public var tokens = 0
    /// Wall time of this mode and of `ar` over the problems both ran.
    public var sharedWallSeconds = 0.0
    public var sharedArWallSeconds = 0.0
    public var acceptedSteps = 0
    public var verifiedSteps = 0
    public var draftPasses = 0
    public var draftSeconds = 0.0
    public var targetPasses = 0
    public var targetSeconds = 0.0
    public var verifySeconds = 0.0
    public var draftPauses = 0
    public var draftedTokens = 0
    public var proposals: [Proposer: ProposalCount] = [:]

    public init(mode: Mode) { self.mode = mode }

    mutating func add(_ r: RunRecord, arWallSeconds: Double?) {
        let s = r.stats
        n += 1
        if r.correct { correct += 1 }
        wallSeconds += s.wallSeconds
        tokens += s.generatedTokens
        if let arWallSeconds {
            sharedWallSeconds += s.wallSeconds
            sharedArWallSeconds += arWallSeconds
        }
        acceptedSteps += s.acceptedDraftSteps
        verifiedSteps += s.acceptedDraftSteps + s.rejectedDraftSteps
        draftPasses += s.draftPasses
        draftSeconds += s.draftSeconds
        targetPasses += s.targetPasses
        targetSeconds += s.targetSeconds
        verifySeconds += s.verifySeconds
        draftPauses += s.draftPauses
        draftedTokens += s.draftedTokens
        for p in Self.proposers {
            proposals[p, default: ProposalCount()].proposed += s.proposed[p] ?? 0
            proposals[p, default: ProposalCount()].accepted += s.acceptedProposals[p] ?? 0
        }
    }

    public var tokensPerSecond: Double { wallSeconds > 0 ? Double(tokens) / wallSeconds : 0 }
    public var accuracy: Double { n == 0 ? 0 : Double(correct) / Double(n) }
    /// Over `ar` on wall time, same problems; nil when `ar` did not run them.
    public var speedup: Double? { sharedWallSeconds > 0 ? sharedArWallSeconds / sharedWallSeconds : nil }
    /// Step acceptance pooled over problems; nil when no draft step was verified.
    public var alpha: Double? { verifiedSteps == 0 ? nil : Double(acceptedSteps) / Double(verifiedSteps) }
    /// Draft pass cost over target pass cost, as measured; nil without draft passes.
    public var c: Double? {
        guard draftPasses > 0, targetPasses > 0, targetSeconds > 0 else { return nil }
        return (draftSeconds / Double(draftPasses)) / (targetSeconds / Double(targetPasses))
    }
    public var verifierShare: Double { wallSeconds > 0 ? verifySeconds / wallSeconds : 0 }
    /// Share of the committed tokens decoded with the draft running (the rest: drafting paused).
    public var draftedShare: Double { tokens > 0 ? Double(draftedTokens) / Double(tokens) : 0 }
    /// Share of wall time outside the model passes and the verifier: planning, acceptance,
    /// bookkeeping — the Swift side of the tick loop.
    public var overheadShare: Double {
        wallSeconds > 0 ? max(0, 1 - (draftSeconds + targetSeconds + verifySeconds) / wallSeconds) : 0
    }

    /// What the paper's async model predicts for the measured α and c at depth γ.
    public func modelSpeedup(gamma: Int) -> Double? {
        guard let alpha, let c else { return nil }
        return SpeedupModel.asyncSpeedup(alpha: alpha, c: c, gamma: gamma)
    }
}

/// What a bench run was asked to do, recorded with its results.
public struct BenchSettings: Sendable, Equatable {
    public var data: String
    public var offset: Int
    public var modes: [Mode]
    public var gamma: Int
    public var verifier: String
    public var maxTokens: Int
    public var stepTokens: Int
    public var fixedSteps: Bool
    public var threads: Int
    public var date: String
    public var adaptive: Bool
    public var batchInvariant: Bool

    public init(data: String, offset: Int, modes: [Mode], gamma: Int, verifier: String, maxTokens: Int,
                stepTokens: Int, fixedSteps: Bool, threads: Int, date: String, adaptive: Bool = true,
                batchInvariant: Bool = false) {
        self.adaptive = adaptive
        self.batchInvariant = batchInvariant
        self.data = data
        self.offset = offset
        self.modes = modes
        self.gamma = gamma
        self.verifier = verifier
        self.maxTokens = maxTokens
        self.stepTokens = stepTokens
        self.fixedSteps = fixedSteps
        self.threads = threads
        self.date = date
    }

    var summary: String {
        "γ \(gamma), verifier \(verifier), ≤ \(maxTokens) tokens, steps ≤ \(stepTokens) tokens"
            + (fixedSteps ? " (fixed length)" : "") + (adaptive ? "" : ", speculation always on")
            + (batchInvariant ? ", batch-invariant kernels" : "")
            + ", \(threads) threads, \(date)"
    }

    var json: JSONValue {
        ["data": .string(data), "offset": JSONValue(offset), "modes": .array(modes.map { .string($0.rawValue) }),
         "gamma": JSONValue(gamma), "verifier": .string(verifier), "max_tokens": JSONValue(maxTokens),
         "step_tokens": JSONValue(stepTokens), "fixed_steps": .bool(fixedSteps), "threads": JSONValue(threads),
         "adaptive": .bool(adaptive), "batch_invariant": .bool(batchInvariant), "date": .string(date)]
    }
}

/// A bench run's records and everything reported from them.
public struct BenchReport: Sendable {
    public var settings: BenchSettings
    public var records: [RunRecord]
    /// The pass costs the tick loop measured by the end of the run.
    public var costs: EngineCosts?

    public init(settings: BenchSettings, records: [RunRecord], costs: EngineCosts? = nil) {
        self.settings = settings
        self.records = records
        self.costs = costs
    }

    /// "target pass ≈ 61 ms + 27 ms/token; draft token 26 ms (c 0.43)": what limits speculation here.
    var costLine: String? {
        guard let costs, let t1 = costs.target.seconds(tokens: 1) else { return nil }
        var line = "measured passes: target \(fixed(t1 * 1000, 1)) ms for 1 token"
        if let b = costs.target.perToken { line += ", + \(fixed(b * 1000, 1)) ms per extra token (β \(fixed(b / t1, 2)))" }
        if let d = costs.draft.seconds(tokens: 1), let c = costs.draftRatio {
            line += "; draft \(fixed(d * 1000, 1)) ms per token (c \(fixed(c, 2)))"
        }
        return line
    }

    public var problemCount: Int { Set(records.map(\.problem)).count }
    var problems: String { problemCount == 1 ? "1 problem" : "\(problemCount) problems" }

    /// One summary per mode, in the order asked for.
    public var summaries: [ModeSummary] {
        var arWall: [Int: Double] = [:]
        for r in records where r.mode == .ar { arWall[r.problem] = r.stats.wallSeconds }
        return settings.modes.map { mode in
            var summary = ModeSummary(mode: mode)
            for r in records where r.mode == mode { summary.add(r, arWallSeconds: arWall[r.problem]) }
            return summary
        }
    }

    /// The table for people.
    public func table() -> String {
        let header = ["mode", "n", "wall s", "tokens", "tok/s", "speed-up", "α (acc/ver)", "c", "model",
                      "verify", "other", "pauses", "drafted", "n-gram acc", "draft-step acc", "accuracy"]
        let rows = summaries.map { s -> [String] in
            let alpha = s.alpha.map { "\(fixed($0, 2)) (\(s.acceptedSteps)/\(s.verifiedSteps))" }
            let proposal = { (p: Proposer) -> String in
                let count = s.proposals[p] ?? ProposalCount()
                return count.rate.map { "\(percent($0)) (\(count.accepted)/\(count.proposed))" } ?? "–"
            }
            return [s.mode.rawValue, "\(s.n)", fixed(s.wallSeconds, 1), "\(s.tokens)", fixed(s.tokensPerSecond, 2),
                    s.speedup.map { fixed($0, 2) + "×" } ?? "–", alpha ?? "–", s.c.map { fixed($0, 2) } ?? "–",
                    s.modelSpeedup(gamma: settings.gamma).map { fixed($0, 2) + "×" } ?? "–",
                    percent(s.verifierShare, 1), percent(s.overheadShare, 1), s.mode.usesDraft ? "\(s.draftPauses)" : "–",
                    s.mode.usesDraft ? percent(s.draftedShare) : "–",
                    proposal(.ngram), proposal(.draftStep),
                    "\(s.correct)/\(s.n) (\(percent(s.accuracy)))"]
        }
        let widths = header.indices.map { col in ([header] + rows).map { $0[col].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { col, cell in
                col == 0 ? cell.padded(widths[col]) : String(repeating: " ", count: widths[col] - cell.count) + cell
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "─", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        return (["\(problems) from \(settings.data) (offset \(settings.offset)); \(settings.summary)",
                 line(header), rule] + rows.map(line) + (costLine.map { [$0] } ?? [])).joined(separator: "\n")
            + "\nspeed-up: wall time of ar over this mode's, same problems. model: the paper's async speed-up "
            + "for the measured α and c at γ \(settings.gamma) (step level only). other: wall time outside model "
            + "and verifier passes. pauses: times drafting was switched off for costing more than plain decoding; "
            + "drafted: share of tokens committed while it ran.\n"
    }

    /// The report for machines: settings, per mode, per run.
    public func json() -> JSONValue {
        var modes = JSONObject()
        for s in summaries {
            var proposers = JSONObject()
            for p in ModeSummary.proposers {
                let count = s.proposals[p] ?? ProposalCount()
                proposers[p.rawValue] = ["proposed": JSONValue(count.proposed), "accepted": JSONValue(count.accepted),
                                         "rate": number(count.rate, 4)]
            }
            modes[s.mode.rawValue] = [
                "wall_s": number(s.wallSeconds, 3), "tokens": JSONValue(s.tokens),
                "tokens_per_s": number(s.tokensPerSecond, 3), "speedup": number(s.speedup, 4),
                "alpha": number(s.alpha, 4), "c": number(s.c, 4), "accuracy": number(s.accuracy, 4),
                "correct": JSONValue(s.correct), "n": JSONValue(s.n),
                "accepted_steps": JSONValue(s.acceptedSteps), "verified_steps": JSONValue(s.verifiedSteps),
                "model_speedup": number(s.modelSpeedup(gamma: settings.gamma), 4),
                "verify_s": number(s.verifySeconds, 3), "verifier_share": number(s.verifierShare, 4),
                "overhead_share": number(s.overheadShare, 4), "draft_pauses": JSONValue(s.draftPauses),
                "drafted_share": number(s.draftedShare, 4), "token_sd": .object(proposers),
            ]
        }
        let runs = records.map { r -> JSONValue in
            let s = r.stats
            return [
                "problem": JSONValue(r.problem), "mode": .string(r.mode.rawValue), "correct": .bool(r.correct),
                "answer": r.answer.map { .string($0) } ?? .null, "reference": .string(r.reference),
                "finish_reason": .string(r.finishReason), "wall_s": number(s.wallSeconds, 3),
                "tokens": JSONValue(s.generatedTokens), "tokens_per_s": number(s.tokensPerSecond, 3),
                "accepted_steps": JSONValue(s.acceptedDraftSteps), "rejected_steps": JSONValue(s.rejectedDraftSteps),
                "committed_steps": JSONValue(s.committedSteps), "draft_passes": JSONValue(s.draftPasses),
                "draft_s": number(s.draftSeconds, 3), "target_passes": JSONValue(s.targetPasses),
                "target_s": number(s.targetSeconds, 3), "verify_s": number(s.verifySeconds, 3),
                "draft_pauses": JSONValue(s.draftPauses), "drafted_tokens": JSONValue(s.draftedTokens),
            ]
        }
        var passes = JSONObject()
        if let costs {
            passes["target_1_token_s"] = number(costs.target.seconds(tokens: 1), 5)
            passes["target_per_extra_token_s"] = number(costs.target.perToken, 5)
            passes["draft_1_token_s"] = number(costs.draft.seconds(tokens: 1), 5)
            passes["c"] = number(costs.draftRatio, 4)
        }
        return ["settings": settings.json, "modes": .object(modes), "problems": .array(runs), "passes": .object(passes)]
    }

    /// Speed-up vs γ: each lookahead mode's measured point beside the model's curve for its α and c.
    public func chart() -> SpeedupChart {
        let series = summaries.filter(\.mode.usesDraft).compactMap { s -> SpeedupChart.Series? in
            guard let alpha = s.alpha, let c = s.c else { return nil }
            return SpeedupChart.Series(label: s.mode.rawValue, alpha: alpha, c: c, gamma: settings.gamma,
                                       measured: s.speedup)
        }
        return SpeedupChart(series: series, title: "Speed-up over ar vs γ: measured and the paper's async model",
                            subtitle: "\(problems); \(settings.summary)")
    }
}

func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
func percent(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f %%", value * 100) }

/// Rounded so the file reads well; nil is JSON null (a ratio with nothing to divide).
func number(_ value: Double?, _ places: Int) -> JSONValue {
    guard let value, value.isFinite else { return .null }
    let scale = pow(10, Double(places))
    return .double((value * scale).rounded() / scale)
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
