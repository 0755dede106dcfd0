import Testing
import Foundation
import Llama
import Lookahead
import StepBatcher

enum RealModels {
    static var directory: String { EngineConfig.defaultModelDirectory }
    static func path(_ name: String) -> String { directory + "/\(name).gguf" }
    static let threads = 2

    /// One set of engines for the whole run: default pair, exact verifier (lossless checks).
    nonisolated(unsafe) static let exact: Engines = try! engines(verifier: "exact")
    nonisolated(unsafe) static let embedding: Engines = try! engines(verifier: "embedding")

    static func engines(verifier: String, target: String = "target", loadDraft: Bool = true) throws -> Engines {
        var c = EngineConfig(modelDirectory: directory)
        c.targetPath = path(target)
        c.verifier = verifier
        c.threads = threads
        c.sequences = 16
        c.contextLength = 2048
        return try Engines(config: c, loadDraft: loadDraft)
    }
}

/// GSM8K problems from the shared data set, with the reference's prompt suffix.
enum GSM8K {
    struct Problem { var question: String; var answer: String }
    static let problems: [Problem] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = root.deletingLastPathComponent().appendingPathComponent("shared/data/gsm8k/test.jsonl")
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").prefix(40).compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String],
                  let q = o["question"], let a = o["answer"] else { return nil }
            return Problem(question: q, answer: String(a.split(separator: "#").last ?? "").trimmingWhitespace)
        }
    }()
    static func prompt(_ p: Problem) -> String {
        p.question + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    }
}

@Suite("Lookahead on real models", .serialized)
struct RealModelTests {
    func config(_ mode: Mode, maxTokens: Int) -> SessionConfig {
        var c = SessionConfig(mode: mode)
        c.maxTokens = maxTokens
        return c
    }

    /// The lossless invariant: exact verifier + greedy gives the target's own tokens in every mode.
    @Test func everyModeMatchesTargetOnlyOnGSM8K() throws {
        try #require(GSM8K.problems.count >= 5, "GSM8K data missing (../shared/data/gsm8k/test.jsonl)")
        let engines = RealModels.exact
        var accepted = 0
        for problem in GSM8K.problems.prefix(5) {
            let prompt = try engines.promptTokens(GSM8K.prompt(problem))
            let ar = try engines.generate(prompt: prompt, config: config(.ar, maxTokens: 80))
            for mode in [Mode.sd, .lookahead, .lookaheadSD] {
                let g = try engines.generate(prompt: prompt, config: config(mode, maxTokens: 80))
                #expect(g.tokens == ar.tokens, "\(mode.rawValue) diverged from ar on: \(problem.question.prefix(60))")
                accepted += g.stats.acceptedDraftSteps
            }
        }
        #expect(accepted > 0, "no draft step was ever accepted")
    }

    @Test func embeddingVerifierOnGSM8K() throws {
        let engines = RealModels.embedding
        var accepted = 0, verified = 0
        for (i, problem) in GSM8K.problems.prefix(5).enumerated() {
            let g = try engines.generate(GSM8K.prompt(problem), config: config(.lookaheadSD, maxTokens: 160))
            #expect(!g.text.isEmpty)
            #expect(g.tokens.count <= 160)
            #expect([FinishReason.stop, .length].contains(g.finishReason))
            #expect(g.stats.committedSteps == g.steps.count)
            accepted += g.stats.acceptedDraftSteps
            verified += g.stats.acceptedDraftSteps + g.stats.rejectedDraftSteps
            print("GSM8K #\(i): reference \(problem.answer), answer: \(g.answer.prefix(80)) — α \(g.stats.alpha), \(g.finishReason)")
        }
        #expect(verified > 0 && accepted > 0, "α must be positive over 5 problems")
    }

    /// Rejection sampling keeps the target's distribution: the first token drawn under `sd`, where
    /// the n-gram lookup proposes it, is distributed as under `ar` over the same seeds.
    @Test func tokenSpeculationKeepsTheSamplingDistribution() throws {
        let engines = try RealModels.engines(verifier: "exact", target: "tiny", loadDraft: false)
        let prompt = try engines.targetModel.vocab.tokenize("red green blue red green blue red green blue red green", addSpecial: true)
        func firstTokens(_ mode: Mode) throws -> [Token: Int] {
            var counts: [Token: Int] = [:]
            for seed in 0..<300 {
                var c = SessionConfig(mode: mode)
                c.maxTokens = 2
                c.proposalTokens = 1
                c.sampling = SamplingParams(temperature: 1.5, topK: 40, topP: 1, seed: UInt64(seed))
                let g = try engines.generate(prompt: prompt, config: c)
                counts[g.tokens[0], default: 0] += 1
            }
            return counts
        }
        let ar = try firstTokens(.ar), sd = try firstTokens(.sd)
        let keys = Set(ar.keys).union(sd.keys)
        let tv = keys.reduce(0.0) { $0 + abs(Double(ar[$1] ?? 0) - Double(sd[$1] ?? 0)) } / 600
        print("first-token TV distance ar vs sd: \(tv); ar \(ar.sorted { $0.value > $1.value }.prefix(4))")
        #expect(ar.count > 1, "the test needs a spread distribution")
        #expect(tv < 0.12)
    }
}
