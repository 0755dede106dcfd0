import Testing
import Llama
import Lookahead
import ScriptedEngines
import TestSupport

@Suite("Verifiers")
struct VerifierTests {
    @Test func exactComparesBytesAndNormalizedFoldsWhitespaceAndCase() throws {
        #expect(TextMatch.bytes.same("So, 3 + 5 = 8.\n\n", "So, 3 + 5 = 8.\n\n"))
        #expect(!TextMatch.bytes.same("So, 3 + 5 = 8.\n\n", "so, 3 + 5 = 8."))
        // Canonically equivalent, different bytes: a draft's bytes would change the target's output.
        #expect(!TextMatch.bytes.same("caf\u{E9}", "cafe\u{301}"))
        #expect(TextMatch.folded.same("So, 3 + 5 = 8.\n\n", "so, 3 + 5 = 8."))
        #expect(!TextMatch.folded.same("3 + 5 = 8", "3 + 5 = 9"))
        let exact = VerifierChain(semantic: nil, match: .bytes), normalized = VerifierChain(semantic: nil, match: .folded)
        let pair = StepPair(target: "So 8.\n\n", draft: "so 8.\n\n")
        #expect(try exact.judge([pair]) == [.rejected])
        #expect(try normalized.judge([pair]) == [.exact])
    }

    @Test func numericGuardReadsNumbers() {
        #expect(NumericGuard.numbers(in: "She pays $1,200.50 for 3 items, i.e. 400.17 each.") == [3, 400.17, 1200.5])
        #expect(NumericGuard.numbers(in: "Step 2. Done.") == [2])
    }

    /// The two arithmetic errors MiniLM passed here (cosine 0.989 and 0.999), and constructed ones.
    static let differentNumbers: [(String, String)] = [
        ("20 + 80 + 160 = 260", "20 + 80 + 160 = 360"),
        ("8000 × 1.012 = 8096", "8000 × 1.012 = 8160"),
        ("So she earns 12 * 4 = 48 dollars per week.", "So she earns 12 * 4 = 46 dollars per week."),
        ("Half of 48 is 24, so May had 24 clips.", "Half of 48 is 25, so May had 25 clips."),
        ("He has 5 apples left after giving away 3.", "He has 6 apples left after giving away 3."),
    ]
    static let paraphrases: [(String, String)] = [
        ("In May she sold 48 / 2 = 24 clips.", "She sold 48 / 2 = 24 clips in May."),
        ("Altogether she sold 48 + 24 = 72 clips.", "In total, she sold 48 + 24 = 72 clips."),
        ("So the total cost is 3 × 4 = 12 dollars.", "So the total cost is 3 × 4 = 12 dollars in all."),
    ]

    @Test func guardVetoesDifferentNumbersBeforeTheSemanticVerifier() throws {
        let lenient = FixedVerifier { _ in true }
        let chain = VerifierChain(semantic: lenient)
        let verdicts = try chain.judge(Self.differentNumbers.map { StepPair(target: $0.0, draft: $0.1) })
        #expect(verdicts.allSatisfy { $0 == .vetoed })
        #expect(chain.guardVetoes == Self.differentNumbers.count)
        #expect(lenient.asked.isEmpty)
    }

    @Test func embeddingChainRejectsWrongNumbersAndAcceptsParaphrases() throws {
        let model = try Model(path: RealModels.path("embed"))
        let embedding = try EmbeddingVerifier(model: model, threshold: 0.95, threads: RealModels.threads)
        // MiniLM alone would pass most arithmetic errors: that is why the guard exists.
        let raw = try embedding.similarities(Self.differentNumbers.map { StepPair(target: $0.0, draft: $0.1) })
        #expect(raw.filter { $0 >= 0.95 }.count >= 2)
        let chain = VerifierChain(semantic: embedding)
        #expect(try chain.judge(Self.differentNumbers.map { StepPair(target: $0.0, draft: $0.1) }).allSatisfy { !$0.accepted })
        let accepted = try chain.judge(Self.paraphrases.map { StepPair(target: $0.0, draft: $0.1) })
        print("paraphrase similarities:", embedding.lastSimilarities)
        #expect(accepted.allSatisfy { $0.accepted })
    }
}

/// The LLM judge on real weights: the target model reused as judge (a context of its own over
/// the loaded weights), deciding from the logits of its two answer tokens.
@Suite("Judge verifier on real models", .serialized)
struct JudgeVerifierTests {
    /// Steps about different things, with the same numbers, so the numeric guard lets them through
    /// and only the judge can tell them apart.
    static let unrelated: [(String, String)] = [
        ("In May she sold 48 / 2 = 24 clips.", "The train leaves the station at 48 / 2 = 24 minutes past noon."),
        ("So the total cost is 3 × 4 = 12 dollars.", "The rectangle has sides 3 and 4, so its diagonal is not 12."),
    ]

    @Test func judgeAcceptsParaphrasesAndRejectsDifferentSteps() throws {
        let model = try Model(path: RealModels.path("target"))
        let judge = try JudgeVerifier(model: model, threads: RealModels.threads)
        let same = try judge.verify(VerifierTests.paraphrases.map { StepPair(target: $0.0, draft: $0.1) })
        let sameMargins = judge.lastMargins
        let different = try judge.verify(Self.unrelated.map { StepPair(target: $0.0, draft: $0.1) })
        print("judge margins (yes − no): paraphrases \(sameMargins), unrelated \(judge.lastMargins)")
        let identical = try judge.verify([StepPair(target: "We have 3 apples.", draft: "We have 3 apples.")])
        print("judge: paraphrases \(same), unrelated \(different)")
        #expect(identical == [true])
        #expect(same.filter { $0 }.count >= 2, "the judge should accept most same-number paraphrases")
        #expect(different.allSatisfy { !$0 }, "the judge accepted steps about different things")
        // Behind the guard, the judge never sees a pair whose numbers differ.
        let chain = VerifierChain(semantic: judge)
        #expect(try chain.judge(VerifierTests.differentNumbers.map { StepPair(target: $0.0, draft: $0.1) }).allSatisfy { !$0.accepted })
        #expect(chain.semanticCounts.calls == 0)
    }

    /// End to end: lookahead with the judge (draft weights) terminates, asks the judge, and writes a
    /// well-formed answer.
    @Test func lookaheadWithTheJudgeOnGSM8K() throws {
        let problems = try GSM8K.problems(4)
        let engines = try RealModels.engines(verifier: "judge")
        var c = SessionConfig(mode: .lookahead)
        c.maxTokens = 96
        c.adaptive = false  // keep drafting on, so the judge is asked
        // Pairs whose numbers differ never reach the judge; the first problem where one does.
        var g = try engines.generate(.text(GSM8K.prompt(problems[0])), config: c)
        var asked = 0
        for problem in problems {
            g = try engines.generate(.text(GSM8K.prompt(problem)), config: c)
            asked = (g.stats.verdicts[.semanticAccept] ?? 0) + (g.stats.verdicts[.semanticReject] ?? 0)
            if asked > 0 { break }
        }
        print("judge run: \(g.tokens.count) tokens, α \(g.stats.alpha), judge calls \(asked), vetoes \(g.stats.verdicts[.vetoed] ?? 0)")
        #expect([FinishReason.stop, .length].contains(g.finishReason))
        #expect(g.tokens.count <= 96 && !g.text.isEmpty)
        #expect(g.stats.acceptedDraftSteps + g.stats.rejectedDraftSteps > 0)
        #expect(asked > 0, "no pair reached the judge")
    }
}

@Suite("Speculative sampling")
struct SamplingTests {
    /// Verifying a point-mass proposal x is drawing the token at the position's keyed uniform and
    /// taking x iff they agree: tokens follow p, x is taken with probability p(x) (the
    /// speculative-sampling acceptance), and the draw at a position never depends on the proposal.
    @Test(arguments: [Token(0), 2, 4, 7])
    func verifyingAProposalPreservesTheDistribution(proposed: Token) {
        let p = TokenDistribution(tokens: [0, 1, 2, 3, 4], probabilities: [0.4, 0.25, 0.2, 0.1, 0.05])
        let n = 40_000
        var counts = [Int](repeating: 0, count: 8)
        var taken = 0
        for position in 0..<n {
            let token = p.sample(u: SeededGenerator.unit(seed: 7, stream: 0, position: position))
            counts[Int(token)] += 1
            if token == proposed { taken += 1 }
        }
        let tv = zip(p.tokens, p.probabilities).reduce(0.0) { $0 + abs(Double(counts[Int($1.0)]) / Double(n) - Double($1.1)) } / 2
        #expect(tv < 0.01)
        #expect(counts[5...].allSatisfy { $0 == 0 })
        #expect(abs(Double(taken) / Double(n) - Double(p.probability(of: proposed))) < 0.01)
    }

    @Test func keyedDrawsDependOnSeedStreamAndPositionOnly() {
        let a = (0..<64).map { SeededGenerator.unit(seed: 3, stream: 0, position: $0) }
        #expect(a == (0..<64).map { SeededGenerator.unit(seed: 3, stream: 0, position: $0) })
        #expect(a != (0..<64).map { SeededGenerator.unit(seed: 4, stream: 0, position: $0) })
        #expect(a != (0..<64).map { SeededGenerator.unit(seed: 3, stream: 1, position: $0) })
        #expect(a.allSatisfy { (0..<1).contains($0) })
    }

    @Test func topPKeepsTheSmallestNucleus() {
        let logits: [Float] = [3, 2, 1, 0, -1]
        let d = logits.withUnsafeBufferPointer { TokenDistribution(logits: $0, params: .init(temperature: 1, topK: 0, topP: 0.8)) }
        #expect(d.tokens == [0, 1])
        #expect(abs(d.probabilities.reduce(0, +) - 1) < 1e-5)
    }
}

@Suite("Speed-up model")
struct SpeedupModelTests {
    /// The reference's illustrative figures for α = 0.5, c = 0.1, async, k = 1 … 10.
    @Test func asyncCurveMatchesThePaper() {
        let expected = [1.00, 1.46, 1.67, 1.75, 1.79, 1.81, 1.81, 1.82, 1.82, 1.82]
        for (k, e) in expected.enumerated() {
            #expect(abs(SpeedupModel.asyncSpeedup(alpha: 0.5, c: 0.1, gamma: k + 1) - e) < 0.011, "k = \(k + 1)")
        }
        #expect(SpeedupModel.gammaCap(c: 0.1) == 10)
        #expect(abs(SpeedupModel.tokenSpeedup(alpha: 0.7, c: 0.05, gamma: 6) - 2.35) < 0.02)
    }
}
