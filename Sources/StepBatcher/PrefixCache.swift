import Llama
import Lookahead

/// Finished sessions' KV cells, kept as cached sequences of one context and found by token prefix
/// (a radix tree over token ids, as SGLang's RadixAttention). A new session whose prompt shares a
/// prefix with a cached sequence starts from a copy of those cells — in llama.cpp's unified KV
/// cache `seq_cp` shares cells, it does not duplicate them — and prefills only the rest.
///
/// Cached sequences hold sequence ids and cells that live sessions may need: `Scheduler` evicts
/// the least recently used first, and live work always wins.
struct PrefixCache {
    struct Entry {
        var tokens: [Token]
        var lastUsed: UInt64
    }

    /// A radix-tree node: the tokens on the edge into it, and the cached sequences whose tokens run
    /// through it (a descendant's sequences are a subset of its ancestors').
    private final class Node {
        var edge: [Token]
        var children: [Token: Node] = [:]
        var sequences: Set<SeqID>
        init(edge: [Token], sequences: Set<SeqID>) {
            self.edge = edge
            self.sequences = sequences
        }
    }

    private let root = Node(edge: [], sequences: [])
    private(set) var entries: [SeqID: Entry] = [:]
    /// Cells the cached sequences hold, each counted in full: an upper bound, since cells that two
    /// of them share (one was seeded from the other) are counted twice.
    private(set) var cells = 0
    private var uses: UInt64 = 0

    var count: Int { entries.count }

    /// The cached sequence sharing the longest prefix with `tokens`, and that prefix's length; nil
    /// when none shares a token. Marks the sequence used.
    mutating func longestMatch(_ tokens: [Token]) -> (seq: SeqID, length: Int)? {
        guard let found = peek(tokens) else { return nil }
        touch(found.seq)
        return found
    }

    /// `longestMatch` without marking anything used.
    func peek(_ tokens: [Token]) -> (seq: SeqID, length: Int)? {
        var node = root, depth = 0
        var best: (seq: SeqID, length: Int)?
        while depth < tokens.count, let child = node.children[tokens[depth]] {
            let matched = commonPrefix(child.edge, tokens[depth...])
            depth += matched
            // The smallest id keeps the choice independent of Set order.
            best = (child.sequences.min()!, depth)
            guard matched == child.edge.count else { break }
            node = child
        }
        return best
    }

    /// Keeps `seq`, whose cells hold `tokens` at positions 0..<count. Returns the sequences that are
    /// no longer needed, for the caller to clear and free: `seq` itself when a cached sequence
    /// already holds all of `tokens`, else those cached sequences whose tokens are a prefix of
    /// `tokens` (every lookup they would answer, `seq` answers as well).
    mutating func insert(_ seq: SeqID, tokens: [Token]) -> [SeqID] {
        precondition(entries[seq] == nil, "sequence \(seq) is already cached")
        guard !tokens.isEmpty else { return [seq] }
        if let covering = peek(tokens), covering.length == tokens.count {
            touch(covering.seq)
            return [seq]
        }
        var node = root, depth = 0
        var superseded: Set<SeqID> = []
        while depth < tokens.count {
            guard var child = node.children[tokens[depth]] else {
                node.children[tokens[depth]] = Node(edge: Array(tokens[depth...]), sequences: [seq])
                break
            }
            let matched = commonPrefix(child.edge, tokens[depth...])
            if matched < child.edge.count {
                let middle = Node(edge: Array(child.edge[..<matched]), sequences: child.sequences)
                child.edge.removeFirst(matched)
                middle.children[child.edge[0]] = child
                node.children[tokens[depth]] = middle
                child = middle
            }
            depth += matched
            // A sequence ending exactly here is a prefix of `tokens`.
            superseded.formUnion(child.sequences.filter { entries[$0]!.tokens.count == depth })
            child.sequences.insert(seq)
            node = child
        }
        entries[seq] = Entry(tokens: tokens, lastUsed: 0)
        cells += tokens.count
        touch(seq)
        for s in superseded { remove(s) }
        return superseded.sorted()
    }

    /// Forgets `seq` (its cells are the caller's to clear).
    mutating func remove(_ seq: SeqID) {
        guard let entry = entries.removeValue(forKey: seq) else { return }
        cells -= entry.tokens.count
        var node = root, depth = 0
        while depth < entry.tokens.count, let child = node.children[entry.tokens[depth]] {
            child.sequences.remove(seq)
            // Nothing else runs through it, so nothing runs below it either.
            if child.sequences.isEmpty {
                node.children[entry.tokens[depth]] = nil
                return
            }
            depth += child.edge.count
            node = child
        }
    }

    /// The least recently used cached sequence other than `sparing`.
    func leastRecentlyUsed(sparing: SeqID? = nil) -> SeqID? {
        entries.filter { $0.key != sparing }.min { $0.value.lastUsed < $1.value.lastUsed }?.key
    }

    private mutating func touch(_ seq: SeqID) {
        uses += 1
        entries[seq]?.lastUsed = uses
    }
}
