import Llama
import Lookahead

/// One context's sequence ids: free, held by live sessions, or holding a cached prefix
/// (`PrefixCache`). Cached ones give way to live sessions, least recently used first.
struct SequencePool {
    private let engine: ModelEngine?
    let total: Int
    private(set) var free: [SeqID]
    private(set) var cache = PrefixCache()
    /// Cells the cached sequences may hold together; nil: the cache is off.
    let cacheCells: Int?

    /// `engine` nil: a context that is not loaded (no draft), with no ids.
    init(engine: ModelEngine?, sequences: Int, cacheCells: Int?) {
        self.engine = engine
        total = engine == nil ? 0 : sequences
        free = (0..<Int32(total)).reversed().map { $0 }
        self.cacheCells = engine == nil ? nil : cacheCells
    }

    var caching: Bool { cacheCells != nil }
    /// Ids a new live session could have: the free ones and every cached one.
    var available: Int { free.count + cache.count }
    var liveUsed: Int { total - available }

    /// The cached sequence that shares the longest prefix with `prompt`, marked used.
    mutating func lookup(_ prompt: [Token]) -> (seq: SeqID, length: Int)? {
        caching ? cache.longestMatch(prompt) : nil
    }

    /// `n` ids for a live session, evicting cached sequences while too few are free (`sparing`
    /// last: the one the session is about to start from).
    mutating func take(_ n: Int, sparing: SeqID?) -> [SeqID] {
        precondition(n <= available, "took \(n) sequences of \(available)")
        while free.count < n, let victim = cache.leastRecentlyUsed(sparing: sparing) ?? cache.leastRecentlyUsed() {
            evict(victim)
        }
        return (0..<n).map { _ in free.removeLast() }
    }

    /// Copies the cached sequence's first `min(length, limit)` cells to each of `seqs` (which hold
    /// none); returns how many. Zero when the cached sequence was evicted meanwhile, or when a
    /// sliding-window cache may have handed out cells the next position attends to: there a cell
    /// that left its own sequence's window can be overwritten, and every cell before the end of a
    /// cached text has (llama-server's `pos_min` test cannot see a cell overwritten in the middle).
    /// So with a window, only a prompt that extends the whole cached text starts from it — a
    /// conversation's next turn, not the same question again.
    func seed(_ seqs: some Sequence<SeqID>, from hit: (seq: SeqID, length: Int)?, limit: Int) -> Int {
        guard let hit, let entry = cache.entries[hit.seq], let engine else { return 0 }
        let n = max(0, min(hit.length, limit))
        if engine.slidingWindow > 0, n < entry.tokens.count { return 0 }
        for s in seqs { engine.copy(hit.seq, to: s, positions: 0..<Int32(n)) }
        return n
    }

    /// Evicts cached sequences until they hold at most `cells` cells.
    mutating func evict(toFit cells: Int) {
        while cache.cells > max(0, cells), let victim = cache.leastRecentlyUsed() { evict(victim) }
    }

    /// A live session's ids come back: `kept` (whose cells hold the listed tokens) joins the cache,
    /// the rest hold no cells and are free.
    mutating func give(_ seqs: [SeqID], keeping kept: KeptPrefix?) {
        free += seqs.filter { $0 != kept?.seq }
        guard let kept else { return }
        precondition(caching && seqs.contains(kept.seq), "kept a sequence the session did not hold")
        for redundant in cache.insert(kept.seq, tokens: kept.tokens) { clear(redundant) }
        evict(toFit: cacheCells!)
    }

    /// Frees ids whose cells were seeded but whose session never started.
    mutating func giveBack(_ seqs: [SeqID]) {
        for s in seqs { clear(s) }
    }

    private mutating func evict(_ seq: SeqID) {
        cache.remove(seq)
        clear(seq)
    }

    private mutating func clear(_ seq: SeqID) {
        engine?.remove(seq, from: 0)
        free.append(seq)
    }
}
