import Testing
import Llama
import Lookahead
import ScriptedEngines
import StepBatcher

/// Drives one session with scripted target and draft models through the real tick runner.
struct Scenario {
    let words = WordText()
    var targetSteps: [String]
    var draftSteps: [String]
    /// Not adaptive: these scenarios pin the algorithm's paths; `AdaptiveTests` drive the cost-led
    /// choices with simulated pass costs.
    var config: SessionConfig = {
        var c = SessionConfig(mode: .lookahead)
        c.adaptive = false
        return c
    }()
    var semantic: StepVerifier? = nil
    /// Draft script for the second candidate track (W = 2).
    var secondDraftSteps: [String]? = nil
    /// The draft's vocabulary when it is not the target's: steps cross as text.
    var draftWords: WordText? = nil
    /// Simulated seconds of a target and a draft pass of n tokens (nil: no simulated time).
    var targetCost: ((Int) -> Double)? = nil
    var draftCost: ((Int) -> Double)? = nil
    /// Sampling distributions the scripted target uses instead of its script: (sequence, step, offset).
    var targetDistribution: ((SeqID, Int, Int) -> TokenDistribution?)? = nil

    struct Outcome {
        var text: String
        var tokens: [Token]
        var events: [SessionEvent]
        var stats: SessionStats
        var reason: FinishReason?
        var target: ScriptedEngine
        var draft: ScriptedEngine
        var session: LookaheadSession
        /// Simulated seconds the run took.
        var seconds: Double
    }

    func run(ticks maxTicks: Int = 500, beforeTick: ((Int, LookaheadSession) -> Void)? = nil) throws -> Outcome {
        try runSessions(1, ticks: maxTicks, beforeTick: beforeTick)[0]
    }

    /// `count` requests one after another on the same engines and tick runner (which carries
    /// measured costs and the speculation ledger from one to the next).
    func runSessions(_ count: Int, ticks maxTicks: Int = 500,
                     beforeTick: ((Int, LookaheadSession) -> Void)? = nil) throws -> [Outcome] {
        let question = Scenario.question
        let dw = draftWords ?? words
        let prompt = Prompt(words.tokens(question), draft: draftWords?.tokens(question))
        let t = targetSteps.map { words.tokens($0) }
        let d = draftSteps.map { dw.tokens($0) }
        let d2 = secondDraftSteps?.map { dw.tokens($0) }
        let target = ScriptedEngine(words: words, promptLength: prompt.target.count) { _ in t }
        let draft = ScriptedEngine(words: dw, promptLength: (prompt.draft ?? prompt.target).count) { seq in seq == 1 ? (d2 ?? d) : d }
        let clock = SimulatedClock()
        target.distribution = targetDistribution
        if let targetCost { target.clock = clock; target.passCost = targetCost }
        if let draftCost { draft.clock = clock; draft.passCost = draftCost }
        let runner = TickRunner(target: target, draft: draft, verifiers: [.embedding: VerifierChain(semantic: semantic)],
                                defaultVerifier: .embedding, clock: { clock.now })
        var outcomes: [Outcome] = []
        for _ in 0..<count {
            let session = try LookaheadSession(prompt: prompt, config: config, target: target, draft: draft,
                                               targetSeqs: (0..<Int32(config.targetSequences)).map { $0 },
                                               draftSeqs: (0..<Int32(config.draftSequences)).map { $0 })
            let start = clock.now
            runner.add(session)
            var events: [SessionEvent] = []
            var n = 0
            while !session.isFinished, n < maxTicks {
                beforeTick?(n, session)
                try runner.tick()
                events += session.takeEvents()
                n += 1
            }
            events += session.takeEvents()
            if session.isFinished {
                runner.remove(session)
                session.releaseSequences()
            }
            outcomes.append(Outcome(
                text: words.detokenize(session.generatedTokens), tokens: session.generatedTokens, events: events,
                stats: session.stats, reason: session.finishReason, target: target, draft: draft, session: session,
                seconds: clock.now - start))
        }
        return outcomes
    }

    static let question = "question : what is it ? |"

    /// What the target alone writes.
    func arText() throws -> String {
        var s = self
        s.config.mode = .ar
        return try s.run().text
    }
}

let script = ["we have 3 apples |", "then buy 5 more |", "so 3 + 5 = 8 |", "answer : 8 |", "done <eos>"]

@Suite("Lookahead session with scripted models")
struct SessionTests {
    @Test func allDraftStepsAccepted() throws {
        let o = try Scenario(targetSteps: script, draftSteps: script).run()
        #expect(o.reason == .stop)
        #expect(o.text == (try Scenario(targetSteps: script, draftSteps: script).arText()))
        #expect(o.stats.rejectedDraftSteps == 0)
        #expect(o.stats.acceptedDraftSteps >= 3)
        #expect(o.events.contains(.step(text: " then buy 5 more\n\n", answer: false, fromDraft: true)))
        #expect(o.target.liveSequences.isEmpty && o.draft.liveSequences.isEmpty, "sequences leaked")
    }

    @Test func rejectAtFirstStepCommitsTargetsStep() throws {
        var draft = script
        draft[0] = "we have 4 apples |"
        let o = try Scenario(targetSteps: script, draftSteps: draft).run()
        #expect(o.text == (try Scenario(targetSteps: script, draftSteps: draft).arText()))
        #expect(o.events.first == .step(text: " we have 3 apples\n\n", answer: false, fromDraft: false))
        #expect(o.stats.rejectedDraftSteps >= 1)
    }

    @Test func rejectInTheMiddleKeepsTheAcceptedPrefix() throws {
        var draft = script
        draft[2] = "so 3 + 5 = 9 |"
        let o = try Scenario(targetSteps: script, draftSteps: draft).run()
        #expect(o.text.contains("3 + 5 = 8"))
        #expect(!o.text.contains("= 9"))
        #expect(o.text == (try Scenario(targetSteps: script, draftSteps: draft).arText()))
        let fromDraft = o.events.compactMap { if case .step(_, _, let d) = $0 { return d } else { return nil } }
        #expect(fromDraft.prefix(3) == [true, true, false])
    }

    @Test func semanticAcceptanceCommitsTheDraftsWording() throws {
        var draft = script
        draft[1] = "then purchase 5 more |"
        var s = Scenario(targetSteps: script, draftSteps: draft)
        s.semantic = FixedVerifier { _ in true }
        let o = try s.run()
        #expect(o.text.contains("purchase 5 more"))
        #expect(o.stats.rejectedDraftSteps == 0)
    }

    @Test func capCutStepsAreRejectedWithoutTheVerifier() throws {
        let long = ["a b c d e f g h |", "then x |", "done <eos>"]
        let verifier = FixedVerifier { _ in true }
        var s = Scenario(targetSteps: long, draftSteps: long)
        s.config.rules.maxTokens = 4
        s.semantic = verifier
        let o = try s.run()
        var ar = s
        ar.config.mode = .ar
        #expect(o.text == (try ar.run().text))
        // Cut steps and the steps right after a cut are never shown to the verifier.
        #expect(verifier.asked.allSatisfy { !$0.target.contains("a b") && !$0.draft.contains("e f") })
        #expect(o.stats.rejectedDraftSteps >= 1)
    }

    @Test func endOfTextInsideADraftStepIsNotAcceptedAgainstADelimitedStep() throws {
        var draft = script
        draft[3] = "answer : 8 <eos>"
        var s = Scenario(targetSteps: script, draftSteps: draft)
        s.semantic = FixedVerifier { _ in true }
        let o = try s.run()
        #expect(o.text.hasSuffix(" done"))
        #expect(o.reason == .stop)
    }

    @Test func answerAfterThinkEndIsTheTargetsOwn() throws {
        let target = ["think a |", "think b </think>", "the answer is 8 |", "really 8 <eos>"]
        let draft = ["think a |", "think b </think>", "the answer is 9 |", "really 9 <eos>"]
        var s = Scenario(targetSteps: target, draftSteps: draft)
        s.semantic = FixedVerifier { _ in true }
        let o = try s.run()
        #expect(o.text.contains("the answer is 8"))
        #expect(!o.text.contains("9"))
        let answers = o.events.compactMap { if case .step(let t, let a, let d) = $0, a { return (t, d) } else { return nil } }
        #expect(!answers.isEmpty && answers.allSatisfy { !$0.1 })
    }

    @Test func widthTwoAcceptsTheSecondCandidate() throws {
        var wrong = script
        wrong[1] = "then buy 6 more |"
        var s = Scenario(targetSteps: script, draftSteps: wrong)
        s.secondDraftSteps = script
        s.config.width = 2
        let o = try s.run()
        #expect(o.text == (try Scenario(targetSteps: script, draftSteps: script).arText()))
        #expect(o.events.contains(.step(text: " then buy 5 more\n\n", answer: false, fromDraft: true)))
        #expect(o.target.liveSequences.isEmpty && o.draft.liveSequences.isEmpty)
    }

    @Test func cancellationMidStepFreesEverySequence() throws {
        let o = try Scenario(targetSteps: script, draftSteps: script).run { tick, session in
            if tick == 3 { session.cancel() }
        }
        #expect(o.reason == .cancelled)
        #expect(o.events.last == .finished(.cancelled))
        #expect(o.target.liveSequences.isEmpty && o.draft.liveSequences.isEmpty)
    }

    @Test(arguments: Mode.allCases)
    func everyModeWritesWhatTheTargetWrites(mode: Mode) throws {
        var draft = script
        draft[2] = "so 3 + 5 = 9 |"
        var s = Scenario(targetSteps: script, draftSteps: draft)
        s.config.mode = mode
        s.config.proposalTokens = 3
        let o = try s.run()
        #expect(o.text == " we have 3 apples\n\n then buy 5 more\n\n so 3 + 5 = 8\n\n answer : 8\n\n done")
        if mode == .lookaheadSD { #expect((o.stats.acceptedProposals[.draftStep] ?? 0) > 0) }
    }

    @Test func maxTokensTruncatesExactly() throws {
        var s = Scenario(targetSteps: script, draftSteps: script)
        s.config.maxTokens = 6
        let o = try s.run()
        #expect(o.tokens.count == 6)
        #expect(o.reason == .length)
        s.config.mode = .ar
        #expect(try s.run().tokens == o.tokens)
    }

    @Test func gammaBoundsTheChain() throws {
        var s = Scenario(targetSteps: script, draftSteps: script)
        s.config.gamma = 2
        let o = try s.run()
        // Never more than γ branches beside the root, so never more than 1 + γ target sequences.
        let most = o.target.passes.map { Set($0.flatMap(\.sequences)).count }.max() ?? 0
        #expect(most <= 3)
        #expect(o.reason == .stop)
    }
}

/// A draft of another family: the same words under other ids, and words of more than three letters
/// in two tokens (" app" + "les"). Each scripted model traps on an id outside its own vocabulary.
@Suite("Steps across vocabularies")
struct CrossVocabularyTests {
    let draftWords = WordText(firstWordID: 1 << 24, splitOver: 3)

    func scenario(draft: [String]) -> Scenario {
        var s = Scenario(targetSteps: script, draftSteps: draft)
        s.draftWords = draftWords
        return s
    }

    /// The draft's own tokens of the question and `steps`: what its cells must hold, position by position.
    func draftTokens(_ steps: [String]) -> [Token] {
        draftWords.tokens(Scenario.question) + steps.flatMap { draftWords.tokens($0) }
    }

    @Test func draftStepsCrossAsTextAndAreAccepted() throws {
        let o = try scenario(draft: script).run()
        #expect(o.text == (try Scenario(targetSteps: script, draftSteps: script).arText()))
        #expect(o.reason == .stop && o.stats.rejectedDraftSteps == 0 && o.stats.acceptedDraftSteps >= 3)
        // The target regenerated from the draft's steps in its own tokens: identical, no verifier call.
        #expect(o.stats.identicalSteps >= 3 && o.stats.sameTextOtherTokens == 0)
        #expect(o.events.contains(.step(text: " then buy 5 more\n\n", answer: false, fromDraft: true)))
        let truth = draftTokens(script)
        let fed = o.draft.passes.flatMap { $0 }
        #expect(fed.contains { $0.token == draftWords.piece(" app") }, "the draft read its own split of 'apples'")
        #expect(fed.allSatisfy { truth[Int($0.position)] == $0.token })
        #expect(o.target.liveSequences.isEmpty && o.draft.liveSequences.isEmpty, "sequences leaked")
    }

    /// After a rejection the target's own step crosses back as text, and the draft goes on from it.
    @Test func aRejectedStepIsReplacedInTheDraftsTokens() throws {
        var wrong = script
        wrong[2] = "so 3 + 5 = 9 |"
        let o = try scenario(draft: wrong).run()
        #expect(o.text == (try Scenario(targetSteps: script, draftSteps: wrong).arText()))
        #expect(o.stats.rejectedDraftSteps >= 1 && o.stats.acceptedDraftSteps >= 3, "\(o.stats)")
        let truth = draftTokens(script), wrongTruth = draftTokens(wrong)
        #expect(o.draft.passes.flatMap { $0 }.allSatisfy {
            truth[Int($0.position)] == $0.token || wrongTruth[Int($0.position)] == $0.token
        })
        let fromDraft = o.events.compactMap { if case .step(_, _, let d) = $0 { return d } else { return nil } }
        #expect(fromDraft.prefix(4) == [true, true, false, true], "the step after the rejection came from the draft again")
    }

    @Test func anAcceptedWordingReachesTheTargetInItsTokens() throws {
        var other = script
        other[1] = "then purchase 5 more |"
        var s = scenario(draft: other)
        s.semantic = FixedVerifier { _ in true }
        let o = try s.run()
        #expect(o.text.contains(" then purchase 5 more\n\n"))
        #expect(o.tokens.filter { $0 != WordText.eos } == s.words.tokenize(o.text))
    }

    /// A draft step with the target's very text in other tokens gives way to the target's step:
    /// the branch on it would continue from tokens the target did not write.
    @Test func theSameTextInOtherTokensCommitsTheTargetsTokens() throws {
        var unusual = script
        unusual[1] = "then bu~y 5 more |"
        var s = Scenario(targetSteps: unusual, draftSteps: script)
        let o = try s.run()
        s.config.mode = .ar
        let ar = try s.run()
        #expect(o.tokens == ar.tokens && o.text == ar.text)
        #expect(o.stats.sameTextOtherTokens == 1 && o.stats.rejectedDraftSteps == 0)
        #expect(o.events.contains(.step(text: " then buy 5 more\n\n", answer: false, fromDraft: false)))
    }
}
