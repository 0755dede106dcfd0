import Foundation
import Llama
import Lookahead
import LookaheadBench
import LookaheadProtocol
import ScriptedEngines
import StepBatcher
import TestSupport
import Testing

/// A word-level target and draft behind a scheduler, as the StepBatcher's tests build them: a
/// crowd's bookkeeping mistake (a sequence handed twice, cells freed early) fails a pass.
private struct CrowdRig {
    let words = WordText()
    let prompt: Prompt
    let target: ScriptedEngine
    let draft: ScriptedEngine

    init() {
        let words = self.words
        prompt = Prompt(words.tokens("question : what is it ? |"))
        let script = ["we have 3 apples |", "then buy 5 more |", "so 3 + 5 = 8 |", "done <eos>"].map { words.tokens($0) }
        target = ScriptedEngine(words: words, promptLength: prompt.target.count) { _ in script }
        draft = ScriptedEngine(words: words, promptLength: prompt.target.count) { _ in script }
    }

    func scheduler(maxSessions: Int, sequences: Int = 32) -> Scheduler {
        Scheduler(engines: EngineSet(target: target, draft: draft, verifiers: [.exact: VerifierChain(semantic: nil, match: .bytes)],
                                     defaultVerifier: .exact, sequences: sequences),
                  limits: BatcherLimits(maxSessions: maxSessions, maxBatchSessions: 0))
    }

    func config(_ mode: Mode) -> SessionConfig {
        var c = SessionConfig(mode: mode)
        c.maxTokens = 64
        c.rules.maxTokens = 16  // four sessions' branches fit the scripted context
        c.adaptive = false
        return c
    }
}

@Suite("Crowds: many sessions through one scheduler")
struct CrowdTests {
    @Test func everySessionFinishesAndSharesTheTargetPasses() throws {
        let rig = CrowdRig()
        let alone = try Crowd.run(rig.scheduler(maxSessions: 4), prompts: [rig.prompt], config: rig.config(.lookahead))
        let crowd = try Crowd.run(rig.scheduler(maxSessions: 4), prompts: Array(repeating: rig.prompt, count: 4),
                                  config: rig.config(.lookahead))
        #expect(crowd.sessions == 4 && crowd.latencies.count == 4 && crowd.peakLive == 4)
        #expect(crowd.tokens == 4 * alone.tokens)
        // Four sessions decode in the passes one would have needed: rows pile up, passes do not.
        #expect(crowd.targetPasses == alone.targetPasses)
        #expect(crowd.targetPassTokens > 3 * alone.targetPassTokens)
        #expect(crowd.passSeconds > 0 && crowd.passSeconds < crowd.wallSeconds)
    }

    @Test func sessionsBeyondTheRoomWaitTheirTurn() throws {
        let rig = CrowdRig()
        let crowd = try Crowd.run(rig.scheduler(maxSessions: 2), prompts: Array(repeating: rig.prompt, count: 5),
                                  config: rig.config(.ar))
        #expect(crowd.peakLive == 2)
        // Admitted in order, two at a time: the third waits for the first two, the fifth for four.
        #expect(crowd.latencies[2] > crowd.latencies[1] && crowd.latencies[4] > crowd.latencies[3])
        #expect(crowd.latencies[4] == crowd.latencies.max())
    }

    @Test func aRequestThatCanNeverFitIsRefusedBeforeAnyRuns() {
        let rig = CrowdRig()
        var config = rig.config(.lookahead)
        config.gamma = 8
        #expect(throws: BatcherError.self) {
            try Crowd.run(rig.scheduler(maxSessions: 2, sequences: 4), prompts: [rig.prompt], config: config)
        }
    }

    @Test func percentilesAreNearestRank() {
        let values = (1...20).map(Double.init).shuffled()
        #expect(percentile(values, 0.5) == 10)
        #expect(percentile(values, 0.95) == 19)
        #expect(percentile([3], 0.95) == 3)
        #expect(percentile([], 0.5) == nil)
    }

    @Test func theReportComparesEachModeWithArAtTheSameCount() throws {
        let settings = BenchSettings(data: "d", offset: 0, modes: [.ar, .lookahead], gamma: 4, verifier: "random:0.6",
                                     maxTokens: 64, stepTokens: 32, fixedSteps: true, threads: 2, date: "now")
        func result(_ mode: Mode, _ seconds: Double) -> CrowdResult {
            CrowdResult(mode: mode, sessions: 8, wallSeconds: seconds, tokens: 800, latencies: [1, 2, 3],
                        peakLive: 8, targetPasses: 10, targetPassTokens: 80, passSeconds: seconds * 0.9)
        }
        let report = CrowdReport(settings: settings, results: [result(.ar, 10), result(.lookahead, 5)])
        #expect(report.table().contains("lookahead\t8\t5.00\t800\t160.0\t2.00×\t2.00\t3.00\t8\t8.0\t10.0 %"))
        guard case .object(let json) = report.json(), case .array(let crowds)? = json["crowds"],
              case .object(let first) = crowds[0] else { Issue.record("no crowds in \(report.json())"); return }
        #expect(first["tokens_per_s"] == .double(80))
        #expect(first["latency_p95_s"] == .double(3))
        #expect(first["overhead_share"] == .double(0.1))
    }
}

@Suite("Pass costs", .serialized)
struct PassCostTests {
    @Test func ratiosAreOverTheOneRowPassAndCGivesGammaStar() {
        let target = PassCostCurve(model: "t", device: "CPU", points: [.init(rows: 4, seconds: 0.012), .init(rows: 1, seconds: 0.010)])
        let draft = PassCostCurve(model: "d", device: "CPU", points: [.init(rows: 1, seconds: 0.0009)])
        let report = PassCostReport(target: target, draft: draft, prefix: 128, repeats: 10)
        #expect(target.points.map(\.rows) == [1, 4])
        #expect(abs(target.ratio(rows: 4)! - 1.2) < 1e-9)
        #expect(target.ratio(rows: 8) == nil)
        #expect(abs(report.c! - 0.09) < 1e-9)
        #expect(report.gammaStar == 12)
        #expect(PassCostReport(target: target, draft: nil, prefix: 1, repeats: 1).gammaStar == nil)
    }

    /// On the real tiny model: a time for each row count, and the context left empty for the next model.
    @Test func theProbeTimesEachRowCountAndLeavesTheContextEmpty() throws {
        let path = EngineConfig.defaultModelDirectory + "/tiny.gguf"
        try requireModel(path)
        let model = try Model(path: path)
        let context = try Context(model: model, params: ContextParams(contextLength: 256, batchSize: 64, sequences: 1,
                                                                     batchInvariant: false))
        let curve = try PassCostProbe.measure(context, rows: [1, 2, 8], prefix: 32, repeats: 2)
        #expect(curve.points.map(\.rows) == [1, 2, 8])
        #expect(curve.points.allSatisfy { $0.seconds > 0 })
        #expect(curve.device == model.device)
        #expect(context.positions(of: 0) == nil)
    }
}
