import Foundation
import Lookahead

/// A self-contained SVG of speed-up against γ: the paper's asynchronous model for each measured
/// (α, c), and the speed-up each mode actually reached at the γ it ran with.
public struct SpeedupChart: Sendable, Equatable {
    public struct Series: Sendable, Equatable {
        public var label: String
        public var alpha: Double
        public var c: Double
        public var gamma: Int
        /// nil when there was no `ar` run to measure against: the curve alone.
        public var measured: Double?

        public init(label: String, alpha: Double, c: Double, gamma: Int, measured: Double?) {
            self.label = label
            self.alpha = alpha
            self.c = c
            self.gamma = gamma
            self.measured = measured
        }

        public func model(gamma: Int) -> Double { SpeedupModel.asyncSpeedup(alpha: alpha, c: c, gamma: gamma) }
    }

    public var series: [Series]
    public var title: String
    public var subtitle: String
    public var gammas: ClosedRange<Int> = 1...8

    public init(series: [Series], title: String, subtitle: String) {
        self.series = series
        self.title = title
        self.subtitle = subtitle
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    static let width = 760.0, height = 460.0
    /// The plot area; the legend sits right of it.
    static let left = 70.0, right = 500.0, top = 70.0, bottom = 390.0

    /// The y range: from 0 (ratios read honestly) to a half step above the highest value.
    var yMax: Double {
        let values: [Double] = series.flatMap { s in gammas.map(s.model(gamma:)) + [s.measured ?? 0] }
        return max(1.5, ((values.max() ?? 1) * 1.1 / 0.5).rounded(.up) * 0.5)
    }

    var yStep: Double { yMax <= 2 ? 0.25 : yMax <= 5 ? 0.5 : 1 }

    func x(_ gamma: Double) -> Double {
        Self.left + (gamma - Double(gammas.lowerBound)) / Double(gammas.count - 1) * (Self.right - Self.left)
    }

    func y(_ speedup: Double) -> Double { Self.bottom - speedup / yMax * (Self.bottom - Self.top) }

    public func svg() -> String {
        var out = [String]()
        func add(_ s: String) { out.append(s) }
        add(#"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(Self.width))" height="\#(Int(Self.height))" "#
            + #"viewBox="0 0 \#(Int(Self.width)) \#(Int(Self.height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#)
        add(#"<rect width="100%" height="100%" fill="white"/>"#)
        add(text(Self.left, 24, title, size: 16, weight: "bold"))
        add(text(Self.left, 44, subtitle, size: 11, fill: "#555"))

        // Grid and y ticks.
        for tick in stride(from: 0.0, through: yMax + 1e-9, by: yStep) {
            add(line(Self.left, y(tick), Self.right, y(tick), stroke: "#e5e5e5"))
            add(text(Self.left - 8, y(tick) + 4, String(format: "%.2f×", tick), anchor: "end"))
        }
        for g in gammas {
            add(line(x(Double(g)), Self.bottom, x(Double(g)), Self.bottom + 5, stroke: "#333"))
            add(text(x(Double(g)), Self.bottom + 20, "\(g)", anchor: "middle"))
        }
        add(line(Self.left, Self.top, Self.left, Self.bottom, stroke: "#333"))
        add(line(Self.left, Self.bottom, Self.right, Self.bottom, stroke: "#333"))
        add(text((Self.left + Self.right) / 2, Self.bottom + 42, "γ (draft steps kept ahead)", anchor: "middle", size: 13))
        let mid = (Self.top + Self.bottom) / 2
        add(#"<text x="20" y="\#(f(mid))" text-anchor="middle" font-size="13" transform="rotate(-90 20 \#(f(mid)))">"#
            + "speed-up over ar (wall time)</text>")

        // ar itself: the line every mode has to beat.
        add(line(Self.left, y(1), Self.right, y(1), stroke: "#888", dash: "6 4"))
        add(text(Self.right - 4, y(1) - 6, "ar = 1×", anchor: "end", fill: "#666"))

        var legendY = Self.top + 6
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let points = gammas.map { "\(f(x(Double($0)))),\(f(y(s.model(gamma: $0))))" }.joined(separator: " ")
            add(#"<polyline fill="none" stroke="\#(color)" stroke-width="2" points="\#(points)"/>"#)
            for g in gammas {
                add(#"<rect x="\#(f(x(Double(g)) - 2.5))" y="\#(f(y(s.model(gamma: g)) - 2.5))" width="5" height="5" fill="\#(color)"/>"#)
            }
            add(line(Self.right + 20, legendY, Self.right + 44, legendY, stroke: color, width: 2))
            add(text(Self.right + 50, legendY + 4, "model, \(s.label)"))
            add(text(Self.right + 50, legendY + 19, String(format: "α = %.2f, c = %.2f, γ* = %d", s.alpha, s.c,
                                                           SpeedupModel.gammaCap(c: s.c)), size: 11, fill: "#555"))
            legendY += 38
            if let measured = s.measured {
                let cx = x(Double(min(max(s.gamma, gammas.lowerBound), gammas.upperBound)))
                add(#"<circle cx="\#(f(cx))" cy="\#(f(y(measured)))" r="6" fill="\#(color)" stroke="black" stroke-width="1.5"/>"#)
                // Alternate sides, so two modes measured alike do not print over each other.
                let (dx, dy, anchor) = i.isMultiple(of: 2) ? (10.0, -8.0, "start") : (-10.0, 18.0, "end")
                add(text(cx + dx, y(measured) + dy, String(format: "%.2f×", measured), anchor: anchor, size: 12,
                         weight: "bold", fill: color))
                add(#"<circle cx="\#(f(Self.right + 32))" cy="\#(f(legendY))" r="6" fill="\#(color)" stroke="black" stroke-width="1.5"/>"#)
                add(text(Self.right + 50, legendY + 4, "measured, \(s.label) (γ = \(s.gamma))"))
                legendY += 30
            }
        }
        if series.isEmpty {
            add(text((Self.left + Self.right) / 2, mid, "no lookahead mode with verified steps", anchor: "middle",
                     size: 14, fill: "#999"))
        }
        add(text(Self.left, Self.height - 14,
                 "model: Lookahead Reasoning, async (paper §3.3); it leaves out token-level SD, which lookahead+sd adds.",
                 size: 11, fill: "#555"))
        add("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    private func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String,
                      width: Double = 1, dash: String? = nil) -> String {
        #"<line x1="\#(f(x1))" y1="\#(f(y1))" x2="\#(f(x2))" y2="\#(f(y2))" stroke="\#(stroke)" stroke-width="\#(f(width))""#
            + (dash.map { #" stroke-dasharray="\#($0)""# } ?? "") + "/>"
    }

    private func text(_ x: Double, _ y: Double, _ content: String, anchor: String = "start", size: Int = 12,
                      weight: String = "normal", fill: String = "#222") -> String {
        #"<text x="\#(f(x))" y="\#(f(y))" text-anchor="\#(anchor)" font-size="\#(size)" font-weight="\#(weight)" fill="\#(fill)">"#
            + escaped(content) + "</text>"
    }

    private func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
