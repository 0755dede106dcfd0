import ArgumentParser
import Foundation
import Llama
import Lookahead
import LookaheadBench
import StepBatcher

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the decoding modes side by side on GSM8K-format problems, in this process.",
        discussion: """
            Loads the models once, warms every mode up (8 untimed tokens), then runs each problem through \
            every mode, the modes interleaved problem by problem (their order rotating) so machine noise hits \
            all alike. Grades the last \\boxed{} answer (else the last number) against the reference after \
            ####. One progress line per run on standard error; the table on standard output. \
            See docs/benchmarks.md.
            """)

    @Option(help: "JSONL with `question` and `answer` per line (GSM8K format). Default: the GSM8K test split vendored in the checkout, \(Bench.vendoredData).",
            completion: .file(extensions: ["jsonl"]))
    var data: String?
    @Option(help: "Problems to run.") var limit: Int = 20
    @Option(help: "Problems to skip first.") var offset: Int = 0
    @Option(help: "Comma-separated modes (\(Mode.allCases.map(\.rawValue).joined(separator: ", "))).")
    var modes: String = Mode.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Draft steps kept ahead (γ).") var gamma: Int = SessionConfig().gamma
    @Option(help: "exact | normalized | embedding | judge | random:P (accept with probability P: synthetic models).")
    var verifier: String = VerifierSpec.default.description
    @Option(name: .customLong("max-tokens"), help: "Token budget per answer.") var maxTokens: Int = SessionConfig().maxTokens
    @Option(name: .customLong("step-tokens"), help: "Token cap per step.") var stepTokens: Int = StepRules().maxTokens
    @Flag(name: .customLong("fixed-steps"),
          help: "Cut steps by --step-tokens alone and verify them like blank-line steps (random-weight models never write a blank line).")
    var fixedSteps = false
    @Flag(name: .customLong("no-adaptive"),
          help: "Keep every speculation on whatever it costs (no fallback to plain decoding, every proposal made): measures the algorithm and its verifier rather than the product.")
    var noAdaptive = false
    @Flag(name: .customLong("batch-invariant"),
          help: "No weight repacking, ggml's reference paths (config batch_invariant = true): answers independent of what shares a pass, ≈ 20 % slower.")
    var batchInvariant = false
    @Flag(name: .customLong("check-lossless"),
          help: "Compare every mode's tokens with ar's on each problem and fail on any difference (needs --batch-invariant, --verifier exact and ar among the modes).")
    var checkLossless = false
    @Option(help: "Engine threads.") var threads: Int = EngineConfig().threads
    @Option(help: ArgumentHelp(
        "Comma-separated session counts (e.g. 1,8,32): run that many problems at once through one scheduler, each mode in turn, instead of one at a time.",
        discussion: "Reports aggregate tokens/s and per-session latency p50/p95 (arrival to result); problems repeat when fewer than the count."))
    var sessions: String?
    @Option(name: .customLong("context-length"), help: "KV cells per context, shared by all sessions (--sessions needs room for each).")
    var contextLength: Int = EngineConfig().contextLength
    @OptionGroup(title: "Models") var models: ModelOptions
    @Option(name: .customLong("json"), help: "Write the report as JSON here.", completion: .file())
    var jsonPath: String?
    @Option(name: .customLong("svg"), help: "Write the speed-up vs γ chart here.", completion: .file())
    var svgPath: String?

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
        guard offset >= 0 else { throw ValidationError("--offset must not be negative") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
        guard contextLength > 0 else { throw ValidationError("--context-length must be positive") }
        let configs = try sessionConfigs()
        if let counts = try sessionCounts() {
            guard svgPath == nil, !checkLossless else { throw ValidationError("--sessions takes neither --svg nor --check-lossless") }
            let each = configs.map(\.targetSequences).max() ?? 1, limit = Context.maxSequences(batchInvariant: batchInvariant)
            guard counts.max()! * each <= limit else {
                throw ValidationError("--sessions \(counts.max()!) × \(each) sequences a session needs more than the \(limit) sequence ids llama.cpp has")
            }
        }
        let spec = try verifierSpec()
        if checkLossless {
            // Elsewhere the modes may split from ar by design: the kernels, or the verifier accepting other text.
            guard batchInvariant, spec == .exact, configs.contains(where: { $0.mode == .ar }) else {
                throw ValidationError("--check-lossless needs --batch-invariant, --verifier exact and ar among --modes")
            }
        }
    }

    private func verifierSpec() throws -> VerifierSpec {
        do { return try VerifierSpec(parsing: verifier) } catch { throw ValidationError("--verifier \(error)") }
    }

    func run() throws {
        ThreadWaitPolicy.ensureInEnvironment()
        let configs = try sessionConfigs()
        let data = try dataPath()
        let problems: [Problem]
        do { problems = try Problem.load(path: data, offset: offset, limit: limit) } catch { throw CLIError("\(data): \(error)") }
        guard !problems.isEmpty else { throw CLIError("\(data): no problems after offset \(offset)") }

        let usesDraft = configs.contains { $0.mode.usesDraft }
        var engineConfig = try models.engineConfig()
        // Without a draft nothing is verified: skip loading a verifier model.
        engineConfig.verifier = usesDraft ? try verifierSpec() : .exact
        engineConfig.threads = threads
        engineConfig.batchInvariant = batchInvariant
        let counts = try sessionCounts()
        engineConfig.sequences = configs.map(\.targetSequences).max()! * (counts?.max() ?? 1)
        engineConfig.contextLength = contextLength
        FileHandle.standardError.write("loading models from \(models.description) …\n")
        let engines: Engines
        do { engines = try Engines(config: engineConfig, loadDraft: usesDraft) } catch { throw CLIError("\(error)") }

        if let counts {
            try runCrowds(engines: engines, configs: configs, problems: problems, counts: counts, data: data)
            return
        }
        // The first pass of each mode pages in the mapped weights and sizes compute buffers: not timed.
        for var config in configs {
            config.maxTokens = 8
            _ = try engines.generate(.text(problems[0].prompt), config: config)
        }

        var records: [RunRecord] = []
        var lossless = LosslessCheck()
        let total = problems.count * configs.count
        for (i, problem) in problems.enumerated() {
            for k in configs.indices {
                let config = configs[(i + k) % configs.count]
                let generation = try engines.generate(.text(problem.prompt), config: config)
                let record = RunRecord(problem: problem, mode: config.mode, text: generation.text,
                                       finishReason: generation.finishReason.rawValue, stats: generation.stats)
                records.append(record)
                lossless.record(problem: problem.line, mode: config.mode, tokens: generation.tokens)
                FileHandle.standardError.write("[\(records.count)/\(total)] \(record.progressLine)\n")
            }
        }

        let report = BenchReport(settings: settings(configs, data: data), records: records, costs: engines.scheduler.costs)
        FileHandle.standardOutput.write(report.table())
        if let jsonPath { try Bench.write("\(report.json())\n", to: jsonPath) }
        if let svgPath { try Bench.write(report.chart().svg(), to: svgPath) }
        if checkLossless {
            FileHandle.standardOutput.write(lossless.report)
            if !lossless.splits.isEmpty { throw ExitCode.failure }
        }
    }

    /// Each count in turn, every mode at that count (their order rotating), on one scheduler, so
    /// the adaptive layer's pass costs carry from run to run as they do in the daemon.
    private func runCrowds(engines: Engines, configs: [SessionConfig], problems: [Problem], counts: [Int], data: String) throws {
        let scheduler = engines.makeScheduler(limits: BatcherLimits(maxSessions: counts.max()!, maxBatchSessions: 0))
        let prompts = try problems.map { try engines.prompt(.text($0.prompt)) }
        for var config in configs {
            config.maxTokens = 8
            _ = try Crowd.run(scheduler, prompts: [prompts[0]], config: config)
        }
        var results: [CrowdResult] = []
        for (i, count) in counts.enumerated() {
            let crowd = (0..<count).map { prompts[$0 % prompts.count] }
            for k in configs.indices {
                let config = configs[(i + k) % configs.count]
                let result: CrowdResult
                do { result = try Crowd.run(scheduler, prompts: crowd, config: config) } catch { throw CLIError("\(count) sessions, \(config.mode.rawValue): \(error)") }
                results.append(result)
                FileHandle.standardError.write("\(config.mode.rawValue) × \(count): \(result.tokens) tok in \(String(format: "%.1f", result.wallSeconds)) s\n")
            }
        }
        let order = { (mode: Mode) in configs.firstIndex { $0.mode == mode }! }
        results.sort { ($0.sessions, order($0.mode)) < ($1.sessions, order($1.mode)) }
        let report = CrowdReport(settings: settings(configs, data: data), results: results)
        FileHandle.standardOutput.write(report.table())
        if let jsonPath { try Bench.write("\(report.json())\n", to: jsonPath) }
    }

    /// `--sessions` as counts; nil without it.
    private func sessionCounts() throws -> [Int]? {
        guard let sessions else { return nil }
        guard let counts = positiveCounts(sessions) else {
            throw ValidationError("--sessions: '\(sessions)' is not a comma-separated list of positive counts")
        }
        return counts
    }

    private func sessionConfigs() throws -> [SessionConfig] {
        let names = modes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var seen = Set<Mode>()
        return try names.map { name in
            guard let mode = Mode(rawValue: name) else {
                throw ValidationError("--modes: '\(name)' is not one of \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard seen.insert(mode).inserted else { throw ValidationError("--modes: '\(name)' twice") }
            var config = SessionConfig(mode: mode)
            config.gamma = gamma
            config.maxTokens = maxTokens
            config.rules.maxTokens = stepTokens
            config.rules.capIsBoundary = fixedSteps
            config.adaptive = !noAdaptive
            do { try config.validate() } catch { throw ValidationError("\(error)") }
            return config
        }
    }

    /// The GSM8K test split in the checkout (MIT; licence beside it).
    static let vendoredData = "Tests/Data/gsm8k/test.jsonl"

    /// `--data`, else the vendored problems: from the working directory (the checkout root), else
    /// from the checkout this binary was built in (.build/<triple>/<configuration>/lookaheadctl).
    private func dataPath() throws -> String {
        if let data { return data }
        let built = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(Bench.vendoredData).path
        for candidate in [Bench.vendoredData, built] where FileManager.default.fileExists(atPath: candidate) { return candidate }
        throw CLIError("no --data given, and the vendored GSM8K problems are not at \(Bench.vendoredData) "
                       + "(nor \(built)): run from the checkout root or pass --data FILE")
    }

    private func settings(_ configs: [SessionConfig], data: String) -> BenchSettings {
        BenchSettings(data: data, offset: offset, modes: configs.map(\.mode), gamma: gamma,
                      verifier: configs.contains { $0.mode.usesDraft } ? verifier : "none", maxTokens: maxTokens,
                      stepTokens: stepTokens, fixedSteps: fixedSteps, threads: threads,
                      date: Date.now.formatted(.iso8601), adaptive: !noAdaptive,
                      batchInvariant: batchInvariant)
    }

    /// A report file, whole; says where it went on standard error.
    static func write(_ text: String, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw CLIError("cannot write \(path)")
        }
        FileHandle.standardError.write("wrote \(path)\n")
    }
}

/// "1, 8,32" as [1, 8, 32]; nil unless every entry is a positive integer (and there is one).
func positiveCounts(_ list: String) -> [Int]? {
    let counts = list.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) ?? 0 }
    return !counts.isEmpty && counts.allSatisfy({ $0 > 0 }) ? counts : nil
}
