/// Requests waiting for admission. Interactive before batch; within a priority, owners (uids)
/// take turns, so one user's thousand asks do not starve another's one; each owner's requests
/// keep their order. Every operation is O(1) amortised (the engine thread reads and pops under
/// the inbox lock every tick, while clients may queue and cancel by the thousand): a cancelled
/// request leaves a tombstone in its owner's line, dropped when reached or when tombstones
/// outnumber the living.
struct AdmissionQueue {
    typealias Owner = UInt32?

    /// One owner's requests of one priority, oldest first.
    private struct Line {
        var tickets = FIFO<Ticket>()
        var dead = 0
        /// Whether the owner is in its lane's turn order.
        var inTurn = false
    }

    /// One priority: its owners' lines and the order in which they take turns.
    private struct Lane {
        var lines: [Owner: Line] = [:]
        var turns = FIFO<Owner>()
        var live = 0
    }

    private var waiting: [Ticket: BatcherRequest] = [:]
    private var lanes = [Lane(), Lane()]

    var count: Int { waiting.count }
    var isEmpty: Bool { waiting.isEmpty }
    var interactiveCount: Int { lanes[Priority.interactive.rawValue].live }
    /// Tickets held in lines, tombstones included: what the queue's memory grows with.
    var heldTickets: Int { lanes.reduce(0) { $0 + $1.lines.values.reduce(0) { $0 + $1.tickets.count } } }

    mutating func insert(_ ticket: Ticket, _ request: BatcherRequest) {
        waiting[ticket] = request
        let p = request.priority.rawValue
        lanes[p].live += 1
        var line = lanes[p].lines[request.owner] ?? Line()
        line.tickets.append(ticket)
        if !line.inTurn {
            line.inTurn = true
            lanes[p].turns.append(request.owner)
        }
        lanes[p].lines[request.owner] = line
    }

    /// Removes and returns the requests with these tickets (those still waiting).
    mutating func remove(_ tickets: Set<Ticket>) -> [BatcherRequest] {
        var removed: [BatcherRequest] = []
        for ticket in tickets {
            guard let request = waiting.removeValue(forKey: ticket) else { continue }
            removed.append(request)
            let p = request.priority.rawValue
            lanes[p].live -= 1
            guard var line = lanes[p].lines[request.owner] else { continue }
            line.dead += 1
            if line.dead > 16, line.dead * 2 > line.tickets.count {
                let live = waiting
                line.tickets.removeAll { live[$0] == nil }
                line.dead = 0
            }
            lanes[p].lines[request.owner] = line
        }
        return removed
    }

    mutating func removeAll() -> [BatcherRequest] {
        defer {
            waiting.removeAll()
            lanes = [Lane(), Lane()]
        }
        return Array(waiting.values)
    }

    /// The requests that fit `room`, taking turns over owners, up to the first that does not fit:
    /// the request whose turn it is is never overtaken, so a large one is not starved by small ones.
    mutating func admit(into room: inout Room) -> [(ticket: Ticket, request: BatcherRequest)] {
        var admitted: [(ticket: Ticket, request: BatcherRequest)] = []
        for p in lanes.indices {
            while let (owner, ticket) = nextInTurn(p) {
                let request = waiting[ticket]!
                guard room.take(promptTokens: request.prompt.cells, config: request.config, priority: request.priority) else {
                    return admitted
                }
                waiting[ticket] = nil
                lanes[p].live -= 1
                _ = lanes[p].lines[owner]!.tickets.popFirst()
                // The owner goes to the back of the turn order, or leaves it with nothing left.
                _ = lanes[p].turns.popFirst()
                if lanes[p].lines[owner]!.tickets.isEmpty {
                    lanes[p].lines[owner] = nil
                } else {
                    lanes[p].turns.append(owner)
                }
                admitted.append((ticket, request))
            }
        }
        return admitted
    }

    /// The owner whose turn it is in lane `p` and its oldest living ticket; tombstones and empty
    /// lines met on the way are dropped.
    private mutating func nextInTurn(_ p: Int) -> (Owner, Ticket)? {
        while let owner = lanes[p].turns.first {
            var line = lanes[p].lines[owner]!
            while let ticket = line.tickets.first, waiting[ticket] == nil {
                _ = line.tickets.popFirst()
                line.dead -= 1
            }
            if let ticket = line.tickets.first {
                lanes[p].lines[owner] = line
                return (owner, ticket)
            }
            _ = lanes[p].turns.popFirst()
            lanes[p].lines[owner] = nil
        }
        return nil
    }
}

/// A first-in-first-out queue with O(1) amortised appends and pops: an array and a head index,
/// compacted once the consumed prefix is half of it.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ element: Element) { items.append(element) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        defer {
            head += 1
            if head >= 32, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
        }
        return items[head]
    }

    mutating func removeAll(where shouldRemove: (Element) -> Bool) {
        items.removeFirst(head)
        head = 0
        items.removeAll(where: shouldRemove)
    }
}
