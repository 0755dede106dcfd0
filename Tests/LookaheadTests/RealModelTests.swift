import Testing
import Foundation
import Llama
import Lookahead
import StepBatcher
import TestSupport

enum RealModels {
    static var directory: String { EngineConfig.defaultModelDirectory }
    /// The cached model `name`; throws, naming the file, when `make models` has not fetched it.
    static func path(_ name: String) throws -> String {
        let path = directory + "/\(name).gguf"
        try requireModel(path)
        return path
    }
    static let threads = 2

    /// One set of engines for the whole run: default pair, exact verifier (lossless checks). Loaded
    /// on first use; a failure (a missing model) fails every test that uses them, and only those.
    static var exact: Engines { get throws { try loadedExact.get() } }
    static var embedding: Engines { get throws { try loadedEmbedding.get() } }
    nonisolated(unsafe) private static let loadedExact = Result { try engines(verifier: "exact") }
    nonisolated(unsafe) private static let loadedEmbedding = Result { try engines(verifier: "embedding") }

    static func engines(verifier: String, target: String = "target", draft: String = "draft", loadDraft: Bool = true,
                        contextLength: Int = 2048) throws -> Engines {
        var c = EngineConfig(modelDirectory: directory)
        c.targetPath = try path(target)
        if loadDraft { c.draftPath = try path(draft) }
        if verifier == "embedding" { c.embedPath = try path("embed") }
        c.verifier = try VerifierSpec(parsing: verifier)
        c.threads = threads
        c.sequences = 16
        c.contextLength = contextLength
        c.batchInvariant = true  // the lossless checks compare tokens across batch shapes
        return try Engines(config: c, loadDraft: loadDraft)
    }
}

@Suite("Lookahead on real models", .serialized)
struct RealModelTests {
    /// A draft trained on less context than the target reads (MiniLM: 512 tokens) is refused at
    /// load, naming both files, instead of drafting noise past its reach.
    @Test func aDraftThatCannotReadTheTargetsContextIsRefusedAtLoad() throws {
        var c = EngineConfig(modelDirectory: RealModels.directory)
        c.targetPath = try RealModels.path("target")
        c.draftPath = try RealModels.path("embed")
        c.verifier = .exact
        c.contextLength = 1024
        let error = try #require(throws: EngineError.self) { try Engines(config: c) }
        guard case .badConfig(let key, let reason) = error else { return }
        #expect(key == "draft_model" && reason.contains(c.draftPath) && reason.contains(c.targetPath)
                && reason.contains("512"), "\(reason)")
    }

    /// Gemma 3 270M (a base model: no chat template) drafting for the Qwen2.5 1.5B target: each
    /// reads the prompt in its own tokens, steps cross as text, and with greedy decoding and the
    /// exact verifier the answer is the target's own, token for token. On GSM8K the tiny Gemma is
    /// rejected (its partial steps are still proposed); on a list both write alike, its steps are
    /// accepted: the Qwen target regenerates them, re-tokenised, to the same tokens.
    @Test func aDraftOfAnotherFamilyKeepsTheTargetsTokens() throws {
        let engines = try RealModels.engines(verifier: "exact", draft: "tiny")
        #expect(!engines.sharesVocabulary)
        let question = GSM8K.prompt(try GSM8K.problem(0))
        let days = "The days of the week, one per paragraph:\n\nMonday\n\nTuesday\n\n"
        // Without a template of its own, the draft reads the question as plain text.
        let draftPrompt = try #require(try engines.prompt(.text(question)).draft)
        #expect(engines.draftModel!.vocab.detokenize(draftPrompt) == question)
        var verified = 0, accepted = 0, proposed = 0
        for (input, maxTokens) in [(PromptInput.text(question), 48), (.raw(days), 32)] {
            let prompt = try engines.prompt(input)
            let ar = try engines.generate(prompt: prompt, config: config(.ar, maxTokens: maxTokens))
            for mode in [Mode.lookahead, .lookaheadSD] {
                let g = try engines.generate(prompt: prompt, config: config(mode, maxTokens: maxTokens))
                #expect(g.tokens == ar.tokens, "\(mode.rawValue) on \(input)")
                verified += g.stats.acceptedDraftSteps + g.stats.rejectedDraftSteps + g.stats.sameTextOtherTokens
                accepted += g.stats.acceptedDraftSteps
                proposed += g.stats.proposed[.draftStep] ?? 0
            }
        }
        #expect(verified > 0 && accepted > 0 && proposed > 0, "verified \(verified), accepted \(accepted), proposed \(proposed)")
    }

    /// The embedding verifier over the same pair: the Gemma steps it accepts are committed and the
    /// Qwen target carries on from them, in its own tokens.
    @Test func anotherFamilysStepsAreAcceptedUnderTheEmbeddingVerifier() throws {
        let engines = try RealModels.engines(verifier: "embedding", draft: "tiny")
        let prompt = try engines.prompt(.raw("The days of the week, one per paragraph:\n\nMonday\n\nTuesday\n\n"))
        let g = try engines.generate(prompt: prompt, config: config(.lookahead, maxTokens: 32))
        #expect(g.stats.acceptedDraftSteps > 0, "\(g.stats)")
        #expect(g.text.hasPrefix("Wednesday\n\nThursday\n\n"), "\(g.text)")
        #expect(try engines.targetModel.vocab.tokenize(g.text) == Array(g.tokens.prefix { !engines.targetModel.vocab.isEndOfGeneration($0) }))
    }

    /// Speculation always on unless `adaptive`: these tests exercise the algorithm's paths, which
    /// the adaptive governor would mostly switch off on this CPU.
    func config(_ mode: Mode, maxTokens: Int, adaptive: Bool = false) -> SessionConfig {
        var c = SessionConfig(mode: mode)
        c.maxTokens = maxTokens
        c.adaptive = adaptive
        return c
    }

    /// The lossless invariant: greedy, the exact verifier (byte equality) and batch-invariant
    /// kernels give the target's own tokens in every mode, every token. A row's arithmetic does not
    /// depend on its pass (LlamaTests), and every sequence's KV cells stay in position order however
    /// branches come and go (`Context.removeRange`), so attention sums as plain decoding does.
    /// While freed cells were refilled out of order, `lookahead` left `ar` at token 56 of problem 1
    /// and `lookahead+sd` at token 25 of problem 2; the 20-problem check is `bench --check-lossless`.
    @Test func everyModeMatchesTargetOnlyOnGSM8K() throws {
        let engines = try RealModels.exact
        var accepted = 0
        for (index, maxTokens) in [(0, 64), (1, 32)] {
            let problem = try GSM8K.problem(index)
            let prompt = try engines.prompt(.text(GSM8K.prompt(problem)))
            let ar = try engines.generate(prompt: prompt, config: config(.ar, maxTokens: maxTokens))
            for (mode, adaptive) in [(Mode.sd, false), (.lookahead, false), (.lookaheadSD, false), (.lookaheadSD, true)] {
                let g = try engines.generate(prompt: prompt, config: config(mode, maxTokens: maxTokens, adaptive: adaptive))
                accepted += g.stats.acceptedDraftSteps
                let split = zip(g.tokens, ar.tokens).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                #expect(g.tokens == ar.tokens, """
                    \(mode.rawValue)\(adaptive ? " (adaptive)" : "") wrote other tokens than ar on problem \(index + 1), \
                    from token \(split ?? min(g.tokens.count, ar.tokens.count))
                    """)
            }
        }
        #expect(accepted > 0, "no draft step was ever accepted")
    }

    /// A prompt prefilled in chunks of 8 tokens, in passes of their own, ends in the same cells as
    /// one prefilled whole: batch-invariant kernels give every row the same arithmetic.
    @Test func aChunkedPrefillWritesTheSameTokens() throws {
        let engines = try RealModels.exact
        let prompt = try engines.prompt(.text(GSM8K.prompt(GSM8K.problem(3)))).target
        var whole = config(.lookahead, maxTokens: 24)
        whole.prefillChunk = prompt.count
        var chunked = whole
        chunked.prefillChunk = 8
        let a = try engines.generate(prompt: Prompt(prompt), config: whole)
        let b = try engines.generate(prompt: Prompt(prompt), config: chunked)
        #expect(prompt.count > 24 && b.stats.targetPasses >= a.stats.targetPasses + prompt.count / 8 - 1, "\(prompt.count) tokens")
        #expect(a.tokens == b.tokens)
    }

    /// Gemma 3's sliding-window layers may give away a cached text's cells outside its window, so
    /// the prefix cache serves it only to a prompt that extends the whole cached text: the same
    /// question again is prefilled in full, the next turn starts from the cache and writes what a
    /// cold run writes.
    @Test func aSlidingWindowModelReusesOnlyAWholeCachedText() throws {
        let engines = try RealModels.engines(verifier: "exact", target: "tiny", loadDraft: false)
        #expect(engines.targetModel.slidingWindow > 0)
        let scheduler = engines.makeScheduler(prefixCacheCells: 2048)
        let prompt = try engines.prompt(.raw("The capital of France is")).target
        let first = try scheduler.generate(prompt: Prompt(prompt), config: config(.ar, maxTokens: 8))
        let again = try scheduler.generate(prompt: Prompt(prompt), config: config(.ar, maxTokens: 8))
        #expect(again.stats.cachedPromptTokens == 0 && again.tokens == first.tokens)
        let next = prompt + first.tokens + (try engines.targetModel.vocab.tokenize(" and the capital of Spain is"))
        let warm = try scheduler.generate(prompt: Prompt(next), config: config(.ar, maxTokens: 8))
        #expect(warm.stats.cachedPromptTokens == prompt.count + first.tokens.count - 1)
        let cold = try RealModels.engines(verifier: "exact", target: "tiny", loadDraft: false).generate(prompt: Prompt(next), config: config(.ar, maxTokens: 8))
        #expect(warm.tokens == cold.tokens)
    }

    @Test func embeddingVerifierOnGSM8K() throws {
        let problems = try GSM8K.problems(5)
        let engines = try RealModels.embedding
        var accepted = 0, verified = 0
        for (i, problem) in problems.enumerated() {
            let g = try engines.generate(.text(GSM8K.prompt(problem)), config: config(.lookaheadSD, maxTokens: 160))
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
    /// the n-gram lookup proposes one, follows the target's own next-token distribution. Chi-square
    /// goodness of fit against the exact distribution (one decode), at significance 0.001; the seeds
    /// are fixed, so the verdict is reproducible.
    @Test func tokenSpeculationKeepsTheSamplingDistribution() throws {
        let engines = try RealModels.engines(verifier: "exact", target: "tiny", loadDraft: false)
        let model = engines.targetModel
        let prompt = try model.vocab.tokenize("red green blue red green blue red green blue red green", addSpecial: true)
        let sampling = SamplingParams(temperature: 1.5, topK: 40, topP: 1, seed: 0)

        let ctx = try Context(model: model, params: ContextParams(contextLength: 256, batchSize: 256, sequences: 1, threads: RealModels.threads))
        let batch = Batch(capacity: 256)
        for (i, t) in prompt.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == prompt.count - 1) }
        try ctx.decode(batch)
        let exact = TokenDistribution(logits: try ctx.logits(at: prompt.count - 1), params: sampling)

        let n = 400
        var counts: [Token: Int] = [:]
        var proposed = 0
        for seed in 0..<n {
            var c = SessionConfig(mode: .sd)
            c.maxTokens = 2
            c.proposalTokens = 1
            c.adaptive = false  // the lookup must propose every time
            c.sampling = SamplingParams(temperature: 1.5, topK: 40, topP: 1, seed: UInt64(seed))
            let g = try engines.generate(prompt: Prompt(prompt), config: c)
            counts[g.tokens[0], default: 0] += 1
            proposed += g.stats.proposed[.ngram] ?? 0
        }
        #expect(proposed >= n, "the n-gram lookup must propose the first token for the test to mean anything")
        // Buckets with an expected count of at least 5; the rest pooled.
        var statistic = 0.0, buckets = 0, restExpected = 0.0, restObserved = 0
        for (t, p) in zip(exact.tokens, exact.probabilities) {
            let expected = Double(n) * Double(p), observed = counts[t] ?? 0
            if expected >= 5 {
                statistic += pow(Double(observed) - expected, 2) / expected
                buckets += 1
            } else {
                restExpected += expected
                restObserved += observed
            }
        }
        restObserved += counts.filter { !exact.tokens.contains($0.key) }.values.reduce(0, +)
        if restExpected > 0 {
            statistic += pow(Double(restObserved) - restExpected, 2) / restExpected
            buckets += 1
        }
        let df = Double(buckets - 1)
        // Wilson–Hilferty: the chi-square quantile at 1 − 0.001 (z = 3.09).
        let critical = df * pow(1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)).squareRoot(), 3)
        print("first token under sd: χ² = \(statistic) over \(buckets) buckets, critical \(critical)")
        #expect(buckets >= 3, "the test needs a spread distribution")
        #expect(statistic < critical)
    }

    /// With sampling keyed by position, a seed fixes the text: `sd` writes what `ar` draws, token
    /// for token, however many of its proposals were taken or refused (a single sequence keeps its
    /// KV cells in order, and batch shape does not change the logits).
    @Test func sampledSpeculationKeepsTheSeedsTokens() throws {
        let engines = try RealModels.engines(verifier: "exact", target: "tiny", loadDraft: false)
        let prompt = try engines.targetModel.vocab.tokenize(
            "One, two, three. One, two, three. Count again: one, two,", addSpecial: true)
        var proposed = 0, taken = 0, distinct = Set<[Token]>()
        for seed in UInt64(1)...6 {
            var c = SessionConfig(mode: .ar)
            c.maxTokens = 32
            c.sampling = SamplingParams(temperature: 0.8, topK: 40, topP: 0.95, seed: seed)
            let ar = try engines.generate(prompt: Prompt(prompt), config: c)
            c.mode = .sd
            c.adaptive = false
            let sd = try engines.generate(prompt: Prompt(prompt), config: c)
            #expect(sd.tokens == ar.tokens, "seed \(seed)")
            proposed += sd.stats.proposed[.ngram] ?? 0
            taken += sd.stats.acceptedProposals[.ngram] ?? 0
            distinct.insert(ar.tokens)
        }
        print("sampled sd: \(taken)/\(proposed) proposals taken; \(distinct.count) distinct texts over 6 seeds")
        #expect(taken > 0 && taken < proposed)
        #expect(distinct.count > 1, "different seeds must sample different texts")
    }
}
