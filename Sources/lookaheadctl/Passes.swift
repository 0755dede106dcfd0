import ArgumentParser
import Foundation
import Llama
import LookaheadBench
import StepBatcher

struct Passes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time one pass of n rows, target and draft: T(n)/T(1), c and γ* = ⌈1/c⌉.",
        discussion: """
            Loads target.gguf and draft.gguf from --models, decodes a --prefix-token context, then times \
            passes of each row count (all rows with logits, read back), --repeats times after one untimed \
            pass, and reports the medians. See docs/benchmarks.md.
            """)

    @Option(help: "Comma-separated row counts.") var rows: String = "1,2,4,8,16,32,64"
    @Option(help: "Tokens of context before the timed rows.") var prefix: Int = 128
    @Option(help: "Timed passes per row count (the median is reported).") var repeats: Int = 10
    @Option(help: "Engine threads.") var threads: Int = EngineConfig().threads
    @Flag(name: .customLong("no-draft"), help: "Time the target only.") var noDraft = false
    @OptionGroup(title: "Models") var models: ModelOptions
    @Option(name: .customLong("json"), help: "Write the report as JSON here.", completion: .file())
    var jsonPath: String?

    func validate() throws {
        _ = try rowCounts()
        guard prefix > 0 else { throw ValidationError("--prefix must be positive") }
        guard repeats > 0 else { throw ValidationError("--repeats must be positive") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
    }

    private func rowCounts() throws -> [Int] {
        guard let counts = positiveCounts(rows), counts.contains(1) else {
            throw ValidationError("--rows: '\(rows)' is not a comma-separated list of positive counts including 1")
        }
        return counts
    }

    func run() throws {
        ThreadWaitPolicy.ensureInEnvironment()
        let counts = try rowCounts()
        let config = try models.engineConfig()
        // Speed as the engine decodes by default: repacked weights, llama.cpp's F16 cache.
        let params = ContextParams(contextLength: prefix + counts.max()!, batchSize: max(prefix, counts.max()!),
                                   sequences: 1, threads: threads, batchInvariant: false)
        func curve(_ path: String, placement: Placement = Placement()) throws -> PassCostCurve {
            FileHandle.standardError.write("timing \(path) …\n")
            do {
                let model = try Model(path: path, gpuLayers: config.gpuLayers, repack: true, placement: placement)
                return try PassCostProbe.measure(try Context(model: model, params: params), rows: counts, prefix: prefix, repeats: repeats)
            } catch { throw CLIError("\(path): \(error)") }
        }
        let report = PassCostReport(target: try curve(config.targetPath, placement: try config.placement(for: .target)),
                                    draft: noDraft ? nil : try curve(config.draftPath, placement: try config.placement(for: .draft)),
                                    prefix: prefix, repeats: repeats)
        FileHandle.standardOutput.write(report.table())
        if let jsonPath { try Bench.write("\(report.json())\n", to: jsonPath) }
    }
}
