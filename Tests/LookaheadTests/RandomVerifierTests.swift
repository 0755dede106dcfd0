import Testing
import Lookahead
import ScriptedEngines

@Suite("Random verifier")
struct RandomVerifierTests {
    static let pairs = Array(repeating: StepPair(target: "3 + 5 = 8", draft: "3 + 5 = 9"), count: 10_000)

    @Test func acceptsAtTheConfiguredRate() {
        let accepted = RandomVerifier(acceptance: 0.6).verify(Self.pairs).filter { $0 }.count
        // 10 000 draws: the standard deviation is 49, so ±250 is five of them.
        #expect(abs(accepted - 6_000) < 250)
    }

    @Test func seededStreamsRepeat() {
        #expect(RandomVerifier(acceptance: 0.5, seed: 7).verify(Self.pairs)
            == RandomVerifier(acceptance: 0.5, seed: 7).verify(Self.pairs))
        #expect(RandomVerifier(acceptance: 0.5, seed: 7).verify(Self.pairs)
            != RandomVerifier(acceptance: 0.5, seed: 8).verify(Self.pairs))
    }

    @Test func endpointsAreExact() {
        #expect(RandomVerifier(acceptance: 0).verify(Self.pairs).allSatisfy { !$0 })
        #expect(RandomVerifier(acceptance: 1).verify(Self.pairs).allSatisfy { $0 })
    }

    @Test func specNamesTheProbability() throws {
        #expect(try VerifierSpec(parsing: "random:0.25") == .random(acceptance: 0.25))
        #expect(try VerifierSpec(parsing: "random:1") == .random(acceptance: 1))
        for bad in ["random:", "random:1.5", "random:-0.1", "random:x", "random", "random0.5"] {
            #expect(throws: VerifierSpecError.self, "\(bad)") { try VerifierSpec(parsing: bad) }
        }
    }

    @Test func everySpecReadsBackWhatItPrints() throws {
        let specs: [VerifierSpec] = [.exact, .normalized, .default, .embedding(threshold: 0.9), .random(acceptance: 0.3),
                                     .judge(model: .draft, margin: VerifierSpec.defaultMargin),
                                     .judge(model: .target, margin: VerifierSpec.defaultMargin),
                                     .judge(model: .path("/m/judge.gguf"), margin: VerifierSpec.defaultMargin)]
        for spec in specs { #expect(try VerifierSpec(parsing: spec.description) == spec, "\(spec)") }
        #expect(try VerifierSpec(parsing: "embedding") == .embedding(threshold: VerifierSpec.defaultThreshold))
        for bad in ["", "exact:1", "embedding:0", "embedding:1.5", "judge:", "semantic", "Exact"] {
            #expect(throws: VerifierSpecError.self, "\(bad)") { try VerifierSpec(parsing: bad) }
        }
    }

    /// Behind the chain, random acceptance is not vetoed by the numeric guard: α stays at P.
    @Test func chainWithoutGuardKeepsTheRate() throws {
        let chain = VerifierChain(semantic: RandomVerifier(acceptance: 0.6), numericGuard: false)
        let accepted = try chain.judge(Self.pairs).filter(\.accepted).count
        #expect(abs(accepted - 6_000) < 250)
        #expect(chain.guardVetoes == 0)
    }
}

/// Random-weight models never write a blank line, so the synthetic benchmark cuts steps by length.
@Suite("Fixed-length steps")
struct FixedLengthStepTests {
    static let words = ["a b c d e f g h i j k l m n o p done <eos>"]

    @Test func capCutStepsAreVerifiedWhenTheCapIsABoundary() throws {
        var s = Scenario(targetSteps: Self.words, draftSteps: Self.words)
        s.config.rules.maxTokens = 4
        s.config.rules.capIsBoundary = true
        let o = try s.run()
        var ar = s
        ar.config.mode = .ar
        #expect(o.text == (try ar.run().text))
        #expect(o.stats.acceptedDraftSteps >= 2)
    }

    @Test func withoutItCapCutStepsAreNeverAccepted() throws {
        var s = Scenario(targetSteps: Self.words, draftSteps: Self.words)
        s.config.rules.maxTokens = 4
        let o = try s.run()
        #expect(o.stats.acceptedDraftSteps == 0)
    }
}
