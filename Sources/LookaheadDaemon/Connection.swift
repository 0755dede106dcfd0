import DaemonConfig
import Logging
import Lookahead
import LookaheadProtocol
import NIOCore
import NIOPosix
import StepBatcher
import Synchronization

/// Where a connection's heavy work runs (parsing a large frame, tokenising a long prompt): the
/// server's thread pool, so one client cannot stall the event loop every other client shares; or
/// inline, for tests on an embedded loop.
enum Offload: Sendable {
    case pool(NIOThreadPool)
    case inline

    /// Frames and prompts this large are handled off the event loop.
    static let threshold = 64 << 10

    func run<T: Sendable>(on loop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        switch self {
        case .pool(let pool): return pool.runIfActive(eventLoop: loop, work)
        case .inline: return loop.makeSucceededFuture(work())
        }
    }
}

/// One client connection: frame payloads in, replies out, several requests in flight. Lives on
/// its channel's event loop; updates from the engine thread hop onto that loop before they touch
/// this handler.
///
/// What one client may hold is bounded (docs/protocol.md, "Limits"): requests in flight, reply
/// bytes it leaves unread (past `maxUnsentBytes` its requests are not read, and a reader stuck for
/// `stalledReaderSeconds` is dropped), a frame it leaves unfinished (`frameTimeoutSeconds`), and
/// an idle connection (`idleTimeoutSeconds`).
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request this connection has not answered yet.
    private enum InFlight {
        /// An ask; its ticket once the batcher has taken it (updates may arrive before that).
        case ask(Ticket?)
        /// A `jobs.*` call the job runner is answering; it cannot be stopped midway.
        case job
    }

    /// A frame's payload, read.
    private enum Incoming: Sendable {
        /// Not a JSON object: the stream cannot be trusted further.
        case unreadable(ProtocolError)
        /// An object, but not a valid request: answered, and the connection stays.
        case invalid(JSONObject, ProtocolError)
        /// With the size of its frame: a large one carries a long prompt, tokenised off the loop.
        case request(Request, frameBytes: Int)
    }

    /// A step event held while the client is not reading: consecutive steps of one phase merge,
    /// so what is held for an ask never exceeds its own text.
    private struct HeldStep {
        var text: String
        var answer: Bool
        var fromDraft: Bool
    }

    private let service: Methods
    private let limits: ConnectionLimits
    private let gate: ConnectionGate
    private let offload: Offload
    private let frames: FrameEncoder
    private let log = Logger(label: "lookaheadd.connection")
    private var context: ChannelHandlerContext?
    private var inFlight: [JSONValue: InFlight] = [:]
    /// The peer's uid (SO_PEERCRED), read once the connection is up; jobs belong to it.
    private var peerUID: UInt32?
    private var admitted = false
    private var closing = false

    /// Payloads read and not yet handled: they wait while an earlier one is handled off the loop,
    /// so requests are handled in the order they were sent.
    private var backlog = CircularBuffer<ByteBuffer>()
    private var offloading = false
    /// A `read` held back (the client is not reading its replies, or work is off the loop).
    private var readHeld = false
    private var held: [JSONValue: [HeldStep]] = [:]

    private var clock: ConnectionClock

    init(service: Methods, limits: ConnectionLimits, gate: ConnectionGate, offload: Offload) {
        self.service = service
        self.limits = limits
        self.gate = gate
        self.offload = offload
        frames = FrameEncoder(maxPayload: limits.maxFrameBytes)
        clock = ConnectionClock(limits: limits, now: .now())
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        clock.lastActivity = context.eventLoop.now
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.channel.peerCredentials().whenComplete { result in
            let uid = (try? result.get())?.uid
            me.value.enter(uid: uid)
        }
        context.fireChannelActive()
    }

    private func enter(uid: UInt32?) {
        peerUID = uid
        if let refusal = gate.enter(uid: uid) {
            fail(refusal)
            return
        }
        admitted = true
        armTimer()
    }

    /// A client that goes away cancels what it asked for; its sessions free their sequences at the
    /// next tick.
    func channelInactive(context: ChannelHandlerContext) {
        for case .ask(let ticket?) in inFlight.values { service.batcher.cancel(ticket) }
        inFlight.removeAll()
        held.removeAll()
        backlog.removeAll()
        clock.cancel()
        if admitted {
            admitted = false
            gate.leave(uid: peerUID)
        }
        context.fireChannelInactive()
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clock.lastActivity = context.eventLoop.now
        clock.partialSince = nil
        backlog.append(unwrapInboundIn(data))
        drain()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .partialFrame? = event as? FrameDecoderEvent else { return context.fireUserInboundEventTriggered(event) }
        clock.lastActivity = context.eventLoop.now
        if clock.partialSince == nil {
            clock.partialSince = clock.lastActivity
            armTimer()
        }
    }

    /// Reads stop while the client leaves its replies unread or a request is being handled off
    /// the loop: what a client can make the daemon hold stays bounded.
    func read(context: ChannelHandlerContext) {
        if offloading || !context.channel.isWritable {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func resumeReading() {
        guard readHeld, !offloading, let context, context.channel.isWritable else { return }
        readHeld = false
        context.read()
    }

    private func drain() {
        while !offloading, !closing, let payload = backlog.popFirst() {
            if payload.readableBytes < Offload.threshold {
                handle(Self.read(payload))
            } else {
                offloaded({ Self.read(payload) }) { $0.handle($1) }
            }
        }
        armTimer()
    }

    /// Runs `work` off the loop, then `then` back on it; frames that arrive meanwhile wait.
    private func offloaded<T: Sendable>(_ work: @escaping @Sendable () -> T, then: @escaping @Sendable (ConnectionHandler, T) -> Void) {
        guard let context else { return }
        offloading = true
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        offload.run(on: context.eventLoop, work).whenComplete { result in
            let handler = me.value
            handler.offloading = false
            switch result {
            case .success(let value): then(handler, value)
            case .failure: handler.fail(ProtocolError(.busy, "the daemon is shutting down"))
            }
            handler.drain()
            handler.resumeReading()
        }
    }

    private static func read(_ payload: ByteBuffer) -> Incoming {
        let object: JSONObject
        do { object = try JSONCodec.decodeObject(payload.readableBytesView) } catch { return .unreadable(error) }
        do { return .request(try Request(json: object), frameBytes: payload.readableBytes) } catch { return .invalid(object, error) }
    }

    private func handle(_ incoming: Incoming) {
        switch incoming {
        case .unreadable(let error):
            fail(error)
        case .invalid(let object, let error):
            send(ErrorReply(replyingTo: object, error: error).json)
        case .request(let request, let frameBytes):
            guard inFlight[request.id] == nil else {
                return refuse(request, ProtocolError(.invalidRequest, "id \(request.id) is already in flight on this connection", field: "id"))
            }
            do {
                try dispatch(request, frameBytes: frameBytes)
            } catch {
                refuse(request, error)
            }
        }
    }

    private func refuse(_ request: Request, _ error: ProtocolError) {
        service.count(method: request.method, outcome: error.code.rawValue)
        send(ErrorReply(id: request.id, error: error).json)
    }

    // MARK: Methods

    private func dispatch(_ request: Request, frameBytes: Int) throws(ProtocolError) {
        let p = request.params
        guard let method = Method(rawValue: request.method) else {
            throw ProtocolError(.unknownMethod, "unknown method '\(request.method)'", field: "method")
        }
        switch method {
        case .ask:
            try roomInFlight()
            ask(request, frameBytes: frameBytes)
        case .cancel:
            try p.rejectUnknown(allowed: ["id"])
            guard let target = p["id"], target.stringValue != nil || target.intValue != nil else {
                throw ProtocolError(.invalidParams, "id (a string or integer) is required", field: "id")
            }
            switch inFlight[target] {
            case nil:
                throw ProtocolError(.notFound, "no request \(target) in flight on this connection", field: "id")
            case .job?:
                throw ProtocolError(.invalidParams, "request \(target) is not an ask; only asks can be cancelled (jobs.cancel stops a job)", field: "id")
            case .ask(let ticket)?:
                // Submitting and marking happen in one event-loop turn: an ask in flight has its ticket.
                if let ticket { service.batcher.cancel(ticket) }
            }
            reply(request, .object(["cancelled": target]))
        case .status:
            try p.rejectUnknown(allowed: [])
            reply(request, service.status())
        case .models:
            try p.rejectUnknown(allowed: [])
            reply(request, service.models)
        case .metrics:
            try p.rejectUnknown(allowed: [])
            reply(request, .object(["content_type": "text/plain; version=0.0.4", "text": .string(service.metricsText())]))
        case .version:
            try p.rejectUnknown(allowed: [])
            reply(request, service.version())
        case .jobsSubmit, .jobsList, .jobsGet, .jobsResults, .jobsCancel:
            try roomInFlight()
            try jobs(request, method)
        }
    }

    /// Only asks and jobs calls stay in flight; the rest are answered at once (a `cancel` too, so
    /// a client at its limit can still cancel).
    private func roomInFlight() throws(ProtocolError) {
        guard inFlight.count < limits.maxInflightPerConnection else {
            throw ProtocolError(.busy, "\(inFlight.count) requests are in flight on this connection, its limit (max_inflight_per_connection)")
        }
    }

    private func reply(_ request: Request, _ result: JSONValue) {
        service.count(method: request.method, outcome: "result")
        send(ResultReply(id: request.id, result: result).json)
    }

    /// The prompt of a large frame is tokenised off the loop (a prompt of `Offload.threshold`
    /// bytes makes a frame at least that large); the ask is submitted back on it.
    private func ask(_ request: Request, frameBytes: Int) {
        let asks = service.asks, params = request.params
        let prepare: @Sendable () -> Result<PreparedAsk, ProtocolError> = { Result { () throws(ProtocolError) in try asks.prepare(params) } }
        if frameBytes >= Offload.threshold {
            offloaded(prepare) { $0.submit(request, $1) }
        } else {
            submit(request, prepare())
        }
    }

    private func submit(_ request: Request, _ prepared: Result<PreparedAsk, ProtocolError>) {
        guard let loop = context?.eventLoop, !closing else { return }
        let ask: PreparedAsk
        switch prepared {
        case .success(let a): ask = a
        case .failure(let error): return refuse(request, error)
        }
        let me = NIOLoopBound(self, eventLoop: loop)
        let id = request.id
        let sink: @Sendable (SessionUpdate) -> Void = { update in
            loop.execute { me.value.deliver(id, update, ask: ask) }
        }
        // Updates hop onto this loop, so none is delivered before the ticket is recorded.
        inFlight[id] = .ask(nil)
        do {
            inFlight[id] = .ask(try service.batcher.submit(BatcherRequest(
                prompt: ask.prompt, config: ask.config, priority: .interactive, owner: peerUID, sink: sink)))
        } catch {
            inFlight[id] = nil
            refuse(request, ProtocolError(error: error, field: "prompt"))
        }
    }

    /// `jobs.*` (JobMethods.swift): the job runner answers from its own queue; the answer hops
    /// back onto this loop. The id stays in flight until then.
    private func jobs(_ request: Request, _ method: Method) throws(ProtocolError) {
        guard let loop = context?.eventLoop else { return }
        let me = NIOLoopBound(self, eventLoop: loop)
        try JobMethods.call(method, request.params, peer: peerUID, runner: service.jobs) { outcome in
            loop.execute { me.value.finishJob(request, outcome) }
        }
        inFlight[request.id] = .job
    }

    private func finishJob(_ request: Request, _ outcome: Result<JSONValue, ProtocolError>) {
        guard inFlight.removeValue(forKey: request.id) != nil else { return }
        answered()
        switch outcome {
        case .success(let result): reply(request, result)
        case .failure(let error): refuse(request, error)
        }
        armTimer()
    }

    private func deliver(_ id: JSONValue, _ update: SessionUpdate, ask: PreparedAsk) {
        guard inFlight[id] != nil else { return }
        switch update {
        case .started:
            break
        case .step(let text, let answer, let fromDraft):
            let step = HeldStep(text: text, answer: answer, fromDraft: fromDraft)
            if let context, context.channel.isWritable {
                send(Self.event(id, step))
            } else {
                hold(id, step)
            }
        case .finished(let generation):
            finish(id)
            service.count(method: Method.ask.rawValue, outcome: "result")
            send(ResultReply(id: id, result: .object(AskResult(generation, mode: ask.config.mode, verifier: ask.verifier).json)).json)
        case .failed(let error):
            finish(id)
            let e = ProtocolError(error: error, field: nil)
            service.count(method: Method.ask.rawValue, outcome: e.code.rawValue)
            send(ErrorReply(id: id, error: e).json)
        }
    }

    /// Ends an ask's stream: steps held for it go out before its final frame.
    private func finish(_ id: JSONValue) {
        inFlight[id] = nil
        answered()
        for step in held.removeValue(forKey: id) ?? [] { send(Self.event(id, step)) }
        armTimer()
    }

    private func answered() {
        if let loop = context?.eventLoop { clock.lastActivity = loop.now }
    }

    private func hold(_ id: JSONValue, _ step: HeldStep) {
        var steps = held[id] ?? []
        if let last = steps.last, last.answer == step.answer {
            steps[steps.count - 1] = HeldStep(text: last.text + step.text, answer: step.answer,
                                              fromDraft: last.fromDraft && step.fromDraft)
        } else {
            steps.append(step)
        }
        held[id] = steps
    }

    private static func event(_ id: JSONValue, _ step: HeldStep) -> JSONObject {
        Event(id: id, event: "step", data: [
            "text": .string(step.text), "phase": .string(step.answer ? "answer" : "thinking"), "from_draft": .bool(step.fromDraft),
        ]).json
    }

    // MARK: Writing

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            clock.unwritableSince = nil
            let steps = held
            held.removeAll()
            for (id, list) in steps { for step in list { send(Self.event(id, step)) } }
            resumeReading()
        } else if clock.unwritableSince == nil {
            clock.unwritableSince = context.eventLoop.now
            armTimer()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Every frame goes out through here, within the frame limit: a result or error that would not
    /// fit becomes a small `too_large` error for its request, an event that would not fit is dropped
    /// (its text still comes in the result).
    private func send(_ message: JSONObject) {
        guard let context else { return }
        let bytes: [UInt8]
        do {
            bytes = try frames.encode(message)
        } catch {
            guard message["event"] == nil else {
                log.warning("dropped an event over max_frame_bytes", metadata: ["error": "\(error)"])
                return
            }
            bytes = standIn(for: message, error)
        }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    private func standIn(for message: JSONObject, _ error: ProtocolError) -> [UInt8] {
        let tooLarge = ProtocolError(.tooLarge, "the reply is over max_frame_bytes: \(error.message)")
        // An id of escaped characters can need six bytes a byte: then the error goes without it.
        for id in [message["id"], nil] {
            if let bytes = try? frames.encode(ErrorReply(id: id, error: tooLarge).json) { return bytes }
        }
        preconditionFailure("max_frame_bytes is at least 1024, and this error is shorter")
    }

    // MARK: Failing and timing out

    /// A frame that cannot be read (too large, not JSON) ends the connection: the stream cannot be
    /// resynchronised. One error frame without an id says why.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail((error as? ProtocolError) ?? ProtocolError(.invalidRequest, "\(error)"))
    }

    /// Ends the connection with one error frame without an id.
    private func fail(_ error: ProtocolError) {
        guard let context, !closing else { return }
        closing = true
        backlog.removeAll()
        let channel = context.channel
        // A client that is not reading would never let the error frame out; it is closed at once.
        guard channel.isWritable, let frame = try? frames.encode(ErrorReply(id: nil, error: error).json) else {
            return context.close(promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: frame))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Nothing in flight or being read: the idle clock runs.
    private var idle: Bool { inFlight.isEmpty && !offloading }

    private func armTimer() {
        guard let context, admitted, !closing else { return }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        clock.arm(on: context.eventLoop, idle: idle) { me.value.timerFired() }
    }

    private func timerFired() {
        clock.fired()
        guard let context, !closing else { return }
        switch clock.expiry(at: context.eventLoop.now, idle: idle) {
        case .unfinishedRequest:
            fail(ProtocolError(.timeout, "a frame was begun and not finished within \(limits.frameTimeoutSeconds) s (frame_timeout_seconds)"))
        case .stalledReader:
            // Nothing more can be written to a client that reads nothing: close without a word.
            log.notice("closing a connection whose replies went unread", metadata: [
                "uid": "\(peerUID.map(String.init) ?? "unknown")", "seconds": "\(limits.stalledReaderSeconds)",
                "in_flight": "\(inFlight.count)",
            ])
            closing = true
            context.close(promise: nil)
        case .idle:
            fail(ProtocolError(.timeout, "idle for \(limits.idleTimeoutSeconds) s with nothing in flight (idle_timeout_seconds)"))
        case nil:
            armTimer()
        }
    }
}

/// Open connections, in all and per uid, against their limits; shared by every connection.
public final class ConnectionGate: Sendable {
    private struct Counts {
        var total = 0
        var byUser: [UInt32?: Int] = [:]
    }

    private let limits: ConnectionLimits
    private let counts = Mutex(Counts())

    public init(limits: ConnectionLimits) { self.limits = limits }

    /// Counts a new connection in, or says why it may not come in.
    func enter(uid: UInt32?) -> ProtocolError? {
        counts.withLock { c in
            if c.total >= limits.maxConnections {
                return ProtocolError(.busy, "the daemon has \(c.total) connections open, its limit (max_connections)")
            }
            let mine = c.byUser[uid, default: 0]
            if mine >= limits.maxConnectionsPerUser {
                let who = uid.map { "uid \($0)" } ?? "a peer of unknown uid"
                return ProtocolError(.busy, "\(who) has \(mine) connections open, the limit per user (max_connections_per_user)")
            }
            c.total += 1
            c.byUser[uid] = mine + 1
            return nil
        }
    }

    func leave(uid: UInt32?) {
        counts.withLock { c in
            c.total -= 1
            let left = c.byUser[uid, default: 1] - 1
            c.byUser[uid] = left > 0 ? left : nil
        }
    }

    var open: Int { counts.withLock { $0.total } }
}
