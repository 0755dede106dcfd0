import Llama
import Lookahead
import ScriptedEngines
import Testing
@testable import StepBatcher

@Suite("Prefix cache: the radix tree")
struct PrefixTreeTests {
    @Test func theLongestSharedPrefixWinsAndEdgesSplitWhereTextsPart() {
        var cache = PrefixCache()
        #expect(cache.insert(1, tokens: [1, 2, 3, 4, 5]).isEmpty)
        #expect(cache.insert(2, tokens: [1, 2, 9, 9]).isEmpty)
        #expect(cache.peek([1, 2, 3, 4, 5, 6])! == (1, 5))
        #expect(cache.peek([1, 2, 3, 7])! == (1, 3))
        #expect(cache.peek([1, 2, 9, 9, 9])! == (2, 4))
        // Both run through [1, 2]: either holds those cells; the choice does not depend on Set order.
        #expect(cache.peek([1, 2, 7])! == (1, 2))
        #expect(cache.peek([7, 1, 2]) == nil)
        #expect(cache.count == 2 && cache.cells == 9)
    }

    @Test func aCoveredTextIsNotKeptTwiceAndAnExtendedOneReplacesItsPrefix() {
        var cache = PrefixCache()
        #expect(cache.insert(1, tokens: [1, 2, 3]).isEmpty)
        // A later turn of the same conversation: the earlier sequence adds nothing any more.
        #expect(cache.insert(2, tokens: [1, 2, 3, 4, 5]) == [1])
        #expect(cache.entries.keys.sorted() == [2] && cache.cells == 5)
        // Already held in full by 2: the newcomer goes.
        #expect(cache.insert(3, tokens: [1, 2, 3]) == [3])
        #expect(cache.insert(4, tokens: []) == [4])
        #expect(cache.entries.keys.sorted() == [2])
        #expect(cache.peek([1, 2, 3, 4, 5, 6])! == (2, 5))
    }

    @Test func removingASequenceForgetsOnlyItsOwnPath() {
        var cache = PrefixCache()
        _ = cache.insert(1, tokens: [1, 2, 3, 4])
        _ = cache.insert(2, tokens: [1, 2, 8])
        _ = cache.insert(3, tokens: [5, 6])
        cache.remove(1)
        #expect(cache.peek([1, 2, 3, 4])! == (2, 2))
        #expect(cache.peek([5, 6, 7])! == (3, 2))
        cache.remove(2)
        #expect(cache.peek([1, 2]) == nil)
        #expect(cache.count == 1 && cache.cells == 2)
        // Ids come back: the same id can hold a new text.
        #expect(cache.insert(1, tokens: [1, 2]).isEmpty)
        #expect(cache.peek([1, 2, 3])! == (1, 2))
    }

    @Test func leastRecentlyUsedCountsLookupsAndSparesTheOneAsked() {
        var cache = PrefixCache()
        _ = cache.insert(1, tokens: [1, 1])
        _ = cache.insert(2, tokens: [2, 2])
        _ = cache.insert(3, tokens: [3, 3])
        #expect(cache.leastRecentlyUsed() == 1)
        _ = cache.longestMatch([1, 1, 1])
        #expect(cache.leastRecentlyUsed() == 2)
        #expect(cache.leastRecentlyUsed(sparing: 2) == 3)
        // peek is for looking, not using.
        _ = cache.peek([2, 2])
        #expect(cache.leastRecentlyUsed() == 2)
    }
}

/// The scheduler with the prefix cache on, over scripted engines that check every pass against
/// the cells each sequence holds and predict from those cells: a session seeded with the wrong
/// cells, or at the wrong position, writes something else or trips the engine.
@Suite("Prefix cache in the scheduler")
struct PrefixCacheSchedulerTests {
    /// Runs one request to the end and returns what it generated.
    func run(_ scheduler: Scheduler, _ prompt: [Token], _ config: SessionConfig) throws -> Generation {
        try scheduler.generate(prompt: Prompt(prompt), config: config)
    }

    /// Positions in the first pass after `passIndex`: where a new session's prefill started.
    func firstPositions(_ engine: ScriptedEngine, after passIndex: Int) -> [Int32] {
        engine.passes[passIndex...].first { !$0.isEmpty }!.map(\.position)
    }

    @Test(arguments: [Mode.ar, .lookaheadSD])
    func theSamePromptAgainPrefillsOnlyItsLastTokenAndWritesTheSame(mode: Mode) throws {
        let rig = Rig()
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        let first = try run(scheduler, rig.prompt, rig.config(mode))
        #expect(first.stats.cachedPromptTokens == 0 && first.stats.promptTokens == rig.prompt.count)
        // What stays: one sequence per model, holding the prompt and the answer but its last token.
        let expectedCells = rig.prompt + first.tokens.dropLast()
        #expect(rig.target.liveSequences.count == 1)
        #expect(rig.target.kv[rig.target.liveSequences[0]]! == expectedCells)
        #expect(scheduler.targetSequencesUsed == 0 && scheduler.prefixCache.targetSequences == 1)
        #expect(scheduler.prefixCache.targetCells == expectedCells.count)

        let targetPasses = rig.target.passes.count, draftPasses = rig.draft.passes.count
        let second = try run(scheduler, rig.prompt, rig.config(mode))
        #expect(second.tokens == first.tokens && second.text == rig.expectedText)
        #expect(second.stats.cachedPromptTokens == rig.prompt.count - 1)
        // Its first pass starts at the prompt's last token (then proposals, in sd modes): everything
        // before came from the cache.
        #expect(firstPositions(rig.target, after: targetPasses).min() == Int32(rig.prompt.count - 1))
        if mode.usesDraft {
            #expect(firstPositions(rig.draft, after: draftPasses) == [Int32(rig.prompt.count - 1)])
        }
        #expect(scheduler.figures.prefixLookups == 2 && scheduler.figures.prefixHits == 1)
        #expect(scheduler.figures.cachedPromptTokens == rig.prompt.count - 1)
        // The second run's text is the first's: nothing new to keep.
        #expect(scheduler.prefixCache.targetSequences == 1)
    }

    /// A draft of another vocabulary caches its own reading of the prompt: the same question again
    /// starts both models at their prompts' last tokens.
    @Test func aDraftOfAnotherVocabularyStartsFromItsOwnCachedPrompt() throws {
        let rig = Rig(draftWords: WordText(firstWordID: 1 << 24, splitOver: 3))
        let draftPrompt = try #require(rig.draftPrompt)
        #expect(draftPrompt.count > rig.prompt.count, "the draft splits the question's long words")
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        let first = try scheduler.generate(prompt: rig.prompts, config: rig.config(.lookaheadSD))
        #expect(first.text == rig.expectedText)
        // The steps the draft is writing, crossed into the target's tokens, are proposed and taken.
        #expect((first.stats.acceptedProposals[.draftStep] ?? 0) > 0)
        #expect(scheduler.prefixCache.draftSequences == 1)
        let targetPasses = rig.target.passes.count, draftPasses = rig.draft.passes.count
        let second = try scheduler.generate(prompt: rig.prompts, config: rig.config(.lookaheadSD))
        #expect(second.tokens == first.tokens)
        #expect(firstPositions(rig.target, after: targetPasses).min() == Int32(rig.prompt.count - 1))
        #expect(firstPositions(rig.draft, after: draftPasses) == [Int32(draftPrompt.count - 1)])
        // Given in the target's tokens only, the prompt reaches the draft (and its cache) as its text.
        let passes = rig.draft.passes.count
        let third = try scheduler.generate(prompt: Prompt(rig.prompt), config: rig.config(.lookaheadSD))
        #expect(third.tokens == first.tokens)
        #expect(firstPositions(rig.draft, after: passes) == [Int32(draftPrompt.count - 1)])
    }

    @Test func aPartialMatchReusesOnlyTheCommonTokens() throws {
        let rig = Rig()
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        _ = try run(scheduler, rig.prompt, rig.config(.lookahead))
        // Same length (the scripted model counts steps after a fixed prompt length), other words.
        var other = rig.prompt
        other[3] = rig.words.id("that")
        let passes = rig.target.passes.count
        let g = try run(scheduler, other, rig.config(.lookahead))
        #expect(g.stats.cachedPromptTokens == 3)
        #expect(firstPositions(rig.target, after: passes).prefix(2) == [3, 4])
        #expect(g.text == rig.expectedText)
        // Both texts are kept: they part at token 3, so neither answers for the other.
        #expect(scheduler.prefixCache.targetSequences == 2)
        let cached = rig.target.liveSequences.map { rig.target.kv[$0]! }
        #expect(cached.contains { $0.starts(with: other) } && cached.contains { $0.starts(with: rig.prompt) })
    }

    @Test func theNextTurnOfAConversationStartsFromThePreviousAnswer() throws {
        let rig = Rig()
        let cached = rig.scheduler(prefixCacheCells: 4096)
        let first = try run(cached, rig.prompt, rig.config(.ar))
        let next = rig.prompt + first.tokens + rig.words.tokens("and then ? |")
        let withCache = try run(cached, next, rig.config(.ar))
        // Everything the first turn's cells hold: its prompt and its answer, less the answer's last
        // token (never fed), here the end of text.
        #expect(withCache.stats.cachedPromptTokens == rig.prompt.count + first.tokens.count - 1)
        let rig2 = Rig()
        let without = try run(rig2.scheduler(), next, rig2.config(.ar))
        #expect(withCache.tokens == without.tokens)
    }

    @Test func aSlidingWindowModelStartsOnlyFromAWholeCachedText() throws {
        let rig = Rig()
        rig.target.slidingWindow = 4
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        let first = try run(scheduler, rig.prompt, rig.config(.ar))
        // The same question again would start inside the cached text, whose cells before its
        // window may have been given away: a full prefill.
        let again = try run(scheduler, rig.prompt, rig.config(.ar))
        #expect(again.stats.cachedPromptTokens == 0 && again.tokens == first.tokens)
        // The next turn extends the whole cached text: it starts from it.
        let next = rig.prompt + first.tokens + rig.words.tokens("and then ? |")
        let turn = try run(scheduler, next, rig.config(.ar))
        #expect(turn.stats.cachedPromptTokens == rig.prompt.count + first.tokens.count - 1)
    }

    @Test func cachePromptFalseNeitherReadsNorLeavesAnything() throws {
        let rig = Rig()
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        var config = rig.config(.lookaheadSD)
        config.cachePrompt = false
        _ = try run(scheduler, rig.prompt, config)
        #expect(rig.target.liveSequences.isEmpty && rig.draft.liveSequences.isEmpty)
        _ = try run(scheduler, rig.prompt, rig.config(.lookaheadSD))
        let g = try run(scheduler, rig.prompt, config)
        #expect(g.stats.cachedPromptTokens == 0)
        #expect(scheduler.figures.prefixLookups == 1 && scheduler.prefixCache.targetSequences == 1)
    }

    @Test func aCacheTooSmallForTheTextKeepsNothingAndPrefillsInFull() throws {
        let rig = Rig()
        let scheduler = rig.scheduler(prefixCacheCells: rig.prompt.count)
        _ = try run(scheduler, rig.prompt, rig.config(.ar))
        #expect(rig.target.liveSequences.isEmpty && scheduler.prefixCache.targetCells == 0)
        let passes = rig.target.passes.count
        let g = try run(scheduler, rig.prompt, rig.config(.ar))
        #expect(g.stats.cachedPromptTokens == 0 && g.text == rig.expectedText)
        #expect(firstPositions(rig.target, after: passes).first == 0)
    }

    @Test func liveSessionsEvictCachedSequencesAndNeverLoseACell() throws {
        // Room for one lookahead session (1 + 4 sequences) and one ar session, nothing more.
        let rig = Rig(sequences: 6)
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        _ = try run(scheduler, rig.prompt, rig.config(.ar))
        var other = rig.prompt
        other[0] = rig.words.id("query")
        _ = try run(scheduler, other, rig.config(.ar))
        #expect(scheduler.prefixCache.targetSequences == 2 && scheduler.room.targetSequences == 6)

        // An ar session runs from its cached copy; then a lookahead one needs five ids: only three
        // are free, so both cached sequences go (the one it could start from, last).
        let runningAr = Heard()
        scheduler.admit(Ticket.next(), prompt: Prompt(other), config: rig.config(.ar), priority: .interactive, sink: runningAr.sink)
        scheduler.tick()
        let arSeq = try #require(rig.target.liveSequences.first { rig.target.kv[$0]!.count == other.count })
        let arCells = rig.target.kv[arSeq]!
        let lookahead = Heard()
        var third = rig.prompt
        third[1] = rig.words.id(";")
        scheduler.admit(Ticket.next(), prompt: Prompt(third), config: rig.config(.lookahead), priority: .interactive, sink: lookahead.sink)
        #expect(scheduler.prefixCache.targetSequences == 0)
        // The running session's cells are untouched by the eviction.
        #expect(rig.target.kv[arSeq]! == arCells)
        while !scheduler.isIdle { scheduler.tick() }
        #expect(runningAr.generation?.text == rig.expectedText && lookahead.generation?.text == rig.expectedText)
        // `third` shared one token with the evicted text and nothing with the one in use: no hit.
        #expect(lookahead.generation?.stats.cachedPromptTokens == 0)
        // The ar run on `other` started from its cached copy, which it then replaced.
        #expect(runningAr.generation?.stats.cachedPromptTokens == other.count - 1)
    }

    @Test func theKVBudgetEvictsCachedCellsBeforeItRefusesLiveWork() throws {
        let config = Rig().config(.ar, maxTokens: 64)
        let reservation = Capacity.kvCells(promptTokens: Rig().prompt.count, config: config)
        // A context that holds one session's reservation and less than one cached answer besides.
        let context = reservation + 10
        let rig = Rig(contextLength: context)
        let scheduler = rig.scheduler(prefixCacheCells: context)
        _ = try run(scheduler, rig.prompt, config)
        #expect(scheduler.prefixCache.targetCells > 10)
        #expect(scheduler.room.kvCells == context)
        var other = rig.prompt
        other[0] = rig.words.id("query")
        let a = Heard()
        scheduler.admit(Ticket.next(), prompt: Prompt(other), config: config, priority: .interactive, sink: a.sink)
        #expect(scheduler.prefixCache.targetSequences == 0 && scheduler.kvCellsReserved == reservation)
        // The evicted cells are gone; the new session has none before its first pass.
        #expect(rig.target.liveSequences.isEmpty)
        while !scheduler.isIdle { scheduler.tick() }
        #expect(a.generation?.text == rig.expectedText)
    }

    @Test func aFailedPassLeavesNothingInTheCache() {
        struct Boom: Error {}
        let rig = Rig()
        let scheduler = rig.scheduler(prefixCacheCells: 4096)
        let h = Heard()
        scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .interactive, sink: h.sink)
        scheduler.tick()
        rig.target.failNextPass = Boom()
        scheduler.tick()
        #expect(scheduler.figures.failed == 1 && scheduler.prefixCache.targetSequences == 0)
        #expect(rig.target.liveSequences.isEmpty)
    }
}
