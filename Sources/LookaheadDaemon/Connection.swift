import Lookahead
import LookaheadProtocol
import NIOCore
import StepBatcher

/// One client connection: decoded frames in, replies out, several requests in flight. Lives on
/// its channel's event loop; updates from the engine thread hop onto that loop before they touch
/// this handler.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = JSONObject
    typealias OutboundOut = JSONObject

    /// A request this connection has not answered yet.
    private enum InFlight {
        /// An ask; its ticket once the batcher has taken it (updates may arrive before that).
        case ask(Ticket?)
        /// A `jobs.*` call the job runner is answering; it cannot be stopped midway.
        case job
    }

    private let service: Methods
    private var context: ChannelHandlerContext?
    private var inFlight: [JSONValue: InFlight] = [:]
    /// The peer's uid (SO_PEERCRED), read once the connection is up; jobs belong to it.
    private var peerUID: UInt32?

    init(service: Methods) { self.service = service }

    func channelActive(context: ChannelHandlerContext) {
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.channel.peerCredentials().whenSuccess { me.value.peerUID = $0?.uid }
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let object = unwrapInboundIn(data)
        let request: Request
        do {
            request = try Request(json: object)
        } catch {
            send(ErrorReply(replyingTo: object, error: error).json)
            return
        }
        guard inFlight[request.id] == nil else {
            send(ErrorReply(id: request.id, error: ProtocolError(
                .invalidRequest, "id \(request.id) is already in flight on this connection", field: "id")).json)
            return
        }
        do {
            try dispatch(request)
        } catch {
            service.count(method: request.method, outcome: error.code.rawValue)
            send(ErrorReply(id: request.id, error: error).json)
        }
    }

    private func dispatch(_ request: Request) throws(ProtocolError) {
        let p = request.params
        switch request.method {
        case "ask":
            try ask(request)
        case "cancel":
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
        case "status":
            try p.rejectUnknown(allowed: [])
            reply(request, service.status())
        case "models":
            try p.rejectUnknown(allowed: [])
            reply(request, service.models)
        case "metrics":
            try p.rejectUnknown(allowed: [])
            reply(request, .object(["content_type": "text/plain; version=0.0.4", "text": .string(service.metrics())]))
        case "version":
            try p.rejectUnknown(allowed: [])
            reply(request, service.version())
        case _ where request.method.hasPrefix("jobs."):
            try jobs(request)
        default:
            throw ProtocolError(.unknownMethod, "unknown method '\(request.method)'", field: "method")
        }
    }

    private func reply(_ request: Request, _ result: JSONValue) {
        service.count(method: request.method, outcome: "result")
        send(ResultReply(id: request.id, result: result).json)
    }

    private func ask(_ request: Request) throws(ProtocolError) {
        let ask = try service.asks.prepare(request.params)
        guard let loop = context?.eventLoop else { return }
        let me = NIOLoopBound(self, eventLoop: loop)
        let id = request.id
        let sink: @Sendable (SessionUpdate) -> Void = { update in
            loop.execute { me.value.deliver(id, update, ask: ask) }
        }
        // Updates hop onto this loop, so none is delivered before the ticket is recorded.
        inFlight[id] = .ask(nil)
        do {
            inFlight[id] = .ask(try service.batcher.submit(BatcherRequest(
                prompt: ask.prompt, config: ask.config, priority: .interactive, sink: sink)))
        } catch {
            inFlight[id] = nil
            throw ProtocolError(error: error, field: "prompt")
        }
    }

    /// `jobs.*` (JobMethods.swift): the job runner answers from its own queue; the answer hops
    /// back onto this loop. The id stays in flight until then.
    private func jobs(_ request: Request) throws(ProtocolError) {
        guard let loop = context?.eventLoop else { return }
        let me = NIOLoopBound(self, eventLoop: loop)
        try JobMethods.call(request.method, request.params, peer: peerUID, runner: service.jobs) { outcome in
            loop.execute { me.value.finishJob(request, outcome) }
        }
        inFlight[request.id] = .job
    }

    private func finishJob(_ request: Request, _ outcome: Result<JSONValue, ProtocolError>) {
        guard inFlight.removeValue(forKey: request.id) != nil else { return }
        switch outcome {
        case .success(let result):
            reply(request, result)
        case .failure(let error):
            service.count(method: request.method, outcome: error.code.rawValue)
            send(ErrorReply(id: request.id, error: error).json)
        }
    }

    private func deliver(_ id: JSONValue, _ update: SessionUpdate, ask: PreparedAsk) {
        guard inFlight[id] != nil else { return }
        switch update {
        case .started:
            break
        case .step(let text, let answer, let fromDraft):
            send(Event(id: id, event: "step", data: [
                "text": .string(text), "phase": .string(answer ? "answer" : "thinking"), "from_draft": .bool(fromDraft),
            ]).json)
        case .finished(let generation):
            inFlight[id] = nil
            service.count(method: "ask", outcome: "result")
            send(ResultReply(id: id, result: .object(AskResult(generation, mode: ask.config.mode, verifier: ask.verifier).json)).json)
        case .failed(let error):
            inFlight[id] = nil
            let e = ProtocolError(error: error, field: nil)
            service.count(method: "ask", outcome: e.code.rawValue)
            send(ErrorReply(id: id, error: e).json)
        }
    }

    private func send(_ frame: JSONObject) {
        context?.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    /// A frame that cannot be read (too large, not JSON) ends the connection: the stream cannot be
    /// resynchronised. One error frame without an id says why.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let e = (error as? ProtocolError) ?? ProtocolError(.invalidRequest, "\(error)")
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ErrorReply(id: nil, error: e).json)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// A client that goes away cancels what it asked for; its sessions free their sequences at the
    /// next tick.
    func channelInactive(context: ChannelHandlerContext) {
        for case .ask(let ticket?) in inFlight.values { service.batcher.cancel(ticket) }
        inFlight.removeAll()
        context.fireChannelInactive()
    }
}
