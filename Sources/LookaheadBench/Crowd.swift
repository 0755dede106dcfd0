import Llama
import Lookahead
import LookaheadProtocol
import StepBatcher

/// Many sessions at once through one scheduler, the way the daemon packs its clients' requests:
/// every request arrives at the start, is admitted as soon as the scheduler has room, and shares
/// each tick's passes with the others. What a crowd gets in aggregate, and what each member waits.
public struct CrowdResult: Sendable, Equatable {
    public var mode: Mode
    public var sessions: Int
    public var wallSeconds: Double
    public var tokens: Int
    /// Per request, arrival to result (queueing included), in request order.
    public var latencies: [Double]
    /// Most sessions the scheduler held at once: fewer than `sessions` when room ran out.
    public var peakLive: Int
    /// Target passes the tick loop ran, and how many rows they carried in all.
    public var targetPasses: Int
    public var targetPassTokens: Int
    /// Seconds in draft, target and verify passes (decoding, reading logits, sampling): each
    /// pass's time is charged to the sessions in it, so the sessions' charges add up to it.
    public var passSeconds: Double

    public init(mode: Mode, sessions: Int, wallSeconds: Double, tokens: Int, latencies: [Double], peakLive: Int,
                targetPasses: Int, targetPassTokens: Int, passSeconds: Double) {
        self.mode = mode
        self.sessions = sessions
        self.wallSeconds = wallSeconds
        self.tokens = tokens
        self.latencies = latencies
        self.peakLive = peakLive
        self.targetPasses = targetPasses
        self.targetPassTokens = targetPassTokens
        self.passSeconds = passSeconds
    }

    /// Wall time outside the passes: planning, acceptance, admission, bookkeeping — the Swift side.
    public var overheadShare: Double { wallSeconds > 0 ? max(0, 1 - passSeconds / wallSeconds) : 0 }

    public var tokensPerSecond: Double { wallSeconds > 0 ? Double(tokens) / wallSeconds : 0 }
    public var p50: Double? { percentile(latencies, 0.50) }
    public var p95: Double? { percentile(latencies, 0.95) }

    var json: JSONValue {
        ["mode": .string(mode.rawValue), "sessions": JSONValue(sessions), "wall_s": number(wallSeconds, 3),
         "tokens": JSONValue(tokens), "tokens_per_s": number(tokensPerSecond, 3),
         "latency_p50_s": number(p50, 3), "latency_p95_s": number(p95, 3), "peak_live": JSONValue(peakLive),
         "target_passes": JSONValue(targetPasses), "target_pass_tokens": JSONValue(targetPassTokens),
         "pass_s": number(passSeconds, 3), "overhead_share": number(overheadShare, 4),
         "latencies_s": .array(latencies.map { number($0, 3) })]
    }
}

public enum Crowd {
    /// Runs every prompt to completion on `scheduler` with `config`, admitted in order as room
    /// allows. Throws when a request can never fit, or when one fails.
    public static func run(_ scheduler: Scheduler, prompts: [Prompt], config: SessionConfig,
                           clock: @escaping () -> Double = monotonicSeconds) throws -> CrowdResult {
        for prompt in prompts { try scheduler.capacity.check(promptTokens: prompt.cells, config: config) }
        let before = scheduler.figures
        var outcomes = [Result<Generation, BatcherError>?](repeating: nil, count: prompts.count)
        var finishedAt = [Double](repeating: 0, count: prompts.count)
        var next = 0, peak = 0
        let t0 = clock()
        while outcomes.contains(where: { $0 == nil }) {
            var room = scheduler.room
            while next < prompts.count, room.take(promptTokens: prompts[next].cells, config: config, priority: .interactive) {
                let i = next
                scheduler.admit(Ticket.next(), prompt: prompts[i], config: config, priority: .interactive) { update in
                    switch update {
                    case .finished(let g): outcomes[i] = .success(g)
                    case .failed(let e): outcomes[i] = .failure(e)
                    case .started, .step: return
                    }
                    finishedAt[i] = clock()
                }
                next += 1
            }
            peak = max(peak, scheduler.liveSessions)
            if scheduler.isIdle, next < prompts.count {
                throw BatcherError.tooLarge("request \(next) does not fit an idle scheduler")
            }
            scheduler.tick()
        }
        let wall = clock() - t0
        let generations = try outcomes.map { try $0!.get() }
        let after = scheduler.figures
        return CrowdResult(mode: config.mode, sessions: prompts.count, wallSeconds: wall,
                           tokens: generations.reduce(0) { $0 + $1.stats.generatedTokens },
                           latencies: finishedAt.map { $0 - t0 }, peakLive: peak,
                           targetPasses: after.targetPasses - before.targetPasses,
                           targetPassTokens: after.targetPassTokens - before.targetPassTokens,
                           passSeconds: generations.reduce(0) { $0 + $1.stats.draftSeconds + $1.stats.targetSeconds + $1.stats.verifySeconds })
    }
}

/// Crowd results of a bench run, for people and for machines.
public struct CrowdReport: Sendable {
    public var settings: BenchSettings
    public var results: [CrowdResult]

    public init(settings: BenchSettings, results: [CrowdResult]) {
        self.settings = settings
        self.results = results
    }

    public func table() -> String {
        var lines = ["sessions at once, packed by the scheduler; \(settings.summary)",
                     "mode\tsessions\twall s\ttokens\ttok/s\tvs ar\tp50 s\tp95 s\tpeak live\trows/target pass\tother"]
        for r in results {
            let ar = results.first { $0.mode == .ar && $0.sessions == r.sessions }
            let ratio = ar.map { $0.tokensPerSecond > 0 ? fixed(r.tokensPerSecond / $0.tokensPerSecond, 2) + "×" : "–" } ?? "–"
            let rows = r.targetPasses > 0 ? fixed(Double(r.targetPassTokens) / Double(r.targetPasses), 1) : "–"
            lines.append([r.mode.rawValue, "\(r.sessions)", fixed(r.wallSeconds, 2), "\(r.tokens)",
                          fixed(r.tokensPerSecond, 1), ratio, r.p50.map { fixed($0, 2) } ?? "–",
                          r.p95.map { fixed($0, 2) } ?? "–", "\(r.peakLive)", rows, percent(r.overheadShare, 1)]
                .joined(separator: "\t"))
        }
        return (lines + ["other: wall time outside the model and verifier passes (the Swift side)."]).joined(separator: "\n") + "\n"
    }

    public func json() -> JSONValue {
        ["settings": settings.json, "crowds": .array(results.map(\.json))]
    }
}

/// The nearest-rank percentile (the smallest value with at least `q` of the values at or below
/// it); nil for no values.
public func percentile(_ values: [Double], _ q: Double) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let rank = Int((q * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}
