import Lookahead
#if canImport(Glibc)
import Glibc
#endif

/// CPU time so far, in seconds: the whole machine's busy time (all cores together) and this
/// process's own, at a wall-clock instant.
public struct CPUSample: Sendable, Equatable {
    public var wall: Double
    public var machineBusy: Double
    public var own: Double

    public init(wall: Double, machineBusy: Double, own: Double) {
        self.wall = wall
        self.machineBusy = machineBusy
        self.own = own
    }

    /// /proc/stat's first line and getrusage; nil where there is no /proc.
    public static func read(wall: Double = monotonicSeconds()) -> CPUSample? {
        guard let file = fopen("/proc/stat", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(whereSeparator: { $0 == " " || $0 == "\n" })
        // cpu user nice system idle iowait irq softirq steal …: busy is all but idle and iowait;
        // steal counts, since a neighbour on the host took that time from us.
        guard fields.first == "cpu", fields.count >= 9 else { return nil }
        let ticks = fields[1...8].map { Double($0) ?? 0 }
        let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUSample(wall: wall, machineBusy: busy / Double(sysconf(Int32(_SC_CLK_TCK))),
                         own: seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }
}

/// How many threads the engine's passes use, from what the rest of the machine runs. ggml's threads
/// wait for each other after every operation; while another process keeps a core busy, one engine
/// thread is often the one not running, and the other waits for it. Measured here (1.5B target,
/// plain decoding, tok/s): beside one busy process 1 thread 7.2–8.3, 2 threads 5.9–6.8; idle,
/// 2 threads 12.5, 1 thread 8. So every `interval` it takes the cores others used (the machine's busy
/// time less ours), gives up threads that the free cores cannot hold with half a core to spare, and
/// takes one back once the free cores hold it short of at most a fifth of a core.
public struct ThreadGovernor: Sendable, Equatable {
    public static let interval = 2.0
    /// The configured thread count: never exceeded.
    public let maximum: Int
    public let cores: Int
    public private(set) var threads: Int
    public private(set) var changes = 0
    private var last: CPUSample?

    public init(maximum: Int, cores: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) {
        self.maximum = max(1, maximum)
        self.cores = max(1, cores)
        threads = self.maximum
    }

    /// Whether a sample taken now would be looked at (spares reading /proc every tick).
    public func isDue(at wall: Double) -> Bool { last.map { wall - $0.wall >= ThreadGovernor.interval } ?? true }

    /// Takes a sample; returns the new thread count when it changes.
    public mutating func observe(_ sample: CPUSample) -> Int? {
        defer { last = sample }
        guard let last, sample.wall - last.wall > 0 else { return nil }
        let others = max(0, (sample.machineBusy - last.machineBusy) - (sample.own - last.own)) / (sample.wall - last.wall)
        let free = Double(cores) - others
        let fewer = Int((free + 0.5).rounded(.down)), more = Int((free + 0.2).rounded(.down))
        let want = fewer < threads ? max(1, fewer) : more > threads ? min(maximum, more) : threads
        guard want != threads else { return nil }
        threads = want
        changes += 1
        return want
    }
}
