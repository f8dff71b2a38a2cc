using System.Diagnostics;
using System.Globalization;

namespace DreamBooth.Cli;

/// <summary>
/// A one-line progress bar on stderr. On a terminal it redraws in place with a carriage return (at most ~10 times a
/// second); when stderr is redirected (a log file, a test) it prints one plain line per 10 % so logs stay short.
/// </summary>
public sealed class ConsoleProgressBar
{
    const int BarWidth = 24;
    readonly TextWriter _writer;
    readonly bool _interactive;
    readonly string _label;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    TimeSpan? _lastDraw;
    int _lastDecile = -1;
    int _lastLength;
    bool _open;

    /// <summary>Creates a bar writing to <paramref name="writer"/>; <paramref name="interactive"/> = redraw in place.</summary>
    public ConsoleProgressBar(TextWriter writer, string label, bool interactive)
    {
        _writer = writer;
        _label = label;
        _interactive = interactive;
    }

    /// <summary>A bar on <see cref="Cli.Err"/>, interactive only when that is a terminal.</summary>
    public static ConsoleProgressBar ForStderr(string label) => new(Cli.Err, label, Cli.ErrIsInteractive);

    /// <summary>Shows <paramref name="done"/> of <paramref name="total"/>, with an optional note (e.g. a file name).</summary>
    public void Update(long done, long total, string? note = null)
    {
        if (total <= 0) return;
        done = Math.Clamp(done, 0, total);
        double fraction = (double)done / total;
        if (_interactive)
        {
            var now = _clock.Elapsed;
            if (done < total && _lastDraw is { } last && now - last < TimeSpan.FromMilliseconds(100)) return;
            _lastDraw = now;
            int filled = (int)Math.Round(fraction * BarWidth);
            var line = $"{_label} [{new string('#', filled)}{new string('-', BarWidth - filled)}] {Format(done, total, note)}";
            _writer.Write('\r' + line + new string(' ', Math.Max(0, _lastLength - line.Length)));
            _lastLength = line.Length;
            _open = true;
            if (done == total) Finish();
        }
        else
        {
            int decile = (int)Math.Floor(fraction * 10);
            if (decile <= _lastDecile) return;
            _lastDecile = decile;
            _writer.WriteLine($"{_label} {Format(done, total, note)}");
        }
    }

    string Format(long done, long total, string? note)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = string.Create(inv, $"{100.0 * done / total,3:F0}% {done}/{total}");
        var secs = _clock.Elapsed.TotalSeconds;
        if (done > 0 && secs > 0) s += string.Create(inv, $" {secs:F1}s");
        return note is null ? s : s + " " + note;
    }

    /// <summary>Ends the line on a terminal (idempotent).</summary>
    public void Finish()
    {
        if (!_open) return;
        _writer.WriteLine();
        _open = false;
    }
}
