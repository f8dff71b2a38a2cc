using System.Diagnostics;
using System.Text;
using DreamBooth.Imaging.Import;
using DreamBooth.Pipelines;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Formatting;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Notebooks;

/// <summary>One progress report in the notebook's terms.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="Total">Steps in all.</param>
/// <param name="Loss">Current loss (training), if any.</param>
/// <param name="Preview">A preview picture; the display takes ownership (disposes it when replaced).</param>
/// <param name="Note">A short line shown under the bar (file being imported, timestep, …).</param>
public sealed record ProgressUpdate(int Step, int Total, double? Loss = null, Image<Rgb24>? Preview = null, string? Note = null);

/// <summary>What the display shows at one moment (formatted as HTML by the registered formatter).</summary>
public sealed record ProgressSnapshot(string Title, int Step, int Total, TimeSpan Elapsed, TimeSpan? Eta, double? Loss, string? Note, Image<Rgb24>? Preview, bool Done)
{
    /// <summary>A progress bar, step/total, elapsed and ETA, the loss and the preview picture.</summary>
    public string ToHtml()
    {
        double frac = Total > 0 ? Math.Clamp(Step / (double)Total, 0, 1) : 0;
        var sb = new StringBuilder();
        sb.Append("<div style=\"display:flex;gap:12px;align-items:center;font-family:sans-serif;font-size:13px\"><div style=\"min-width:320px\">");
        sb.Append("<div><b>").Append(NotebookHtml.Enc(Title)).Append("</b> ").Append(Step).Append(" / ").Append(Total)
          .Append(Done ? " ✓" : "").Append("</div>");
        sb.Append("<div style=\"width:300px;height:10px;background:#e6e6e6;border-radius:5px;overflow:hidden;margin:3px 0\"><div style=\"width:")
          .Append(NotebookHtml.Num(frac * 100, "0.#")).Append("%;height:100%;background:").Append(Done ? "#2da44e" : "#636efa").Append("\"></div></div>");
        sb.Append("<div style=\"color:#444\">").Append(NotebookHtml.Enc(Format(Elapsed))).Append(" elapsed");
        if (!Done && Eta is { } eta) sb.Append(" · ETA ").Append(NotebookHtml.Enc(Format(eta)));
        if (Step > 0 && Elapsed.TotalSeconds > 0) sb.Append(" · ").Append(NotebookHtml.Num(Elapsed.TotalSeconds / Step, "0.###")).Append(" s/step");
        if (Loss is { } loss) sb.Append(" · loss ").Append(NotebookHtml.Num(loss, "0.####"));
        sb.Append("</div>");
        if (!string.IsNullOrEmpty(Note)) sb.Append("<div style=\"color:#666\">").Append(NotebookHtml.Enc(Note)).Append("</div>");
        sb.Append("</div>");
        if (Preview != null) sb.Append(NotebookHtml.Img(Preview, 96, "preview"));
        sb.Append("</div>");
        return sb.ToString();
    }

    /// <summary>m:ss or h:mm:ss.</summary>
    public static string Format(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", System.Globalization.CultureInfo.InvariantCulture)
        : t.ToString(@"m\:ss", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// A progress display that updates in place in the notebook (one output that is replaced, not a wall of lines):
/// step/total, elapsed time and ETA, the current loss and an optional preview picture. Pass it straight to engine calls
/// as <c>IProgress&lt;GenerationProgress&gt;</c> or <c>IProgress&lt;ImportProgress&gt;</c>, or adapt any progress type with
/// <see cref="For{T}"/>. The engine calls <c>Report</c> synchronously on its compute thread; updates are throttled
/// (<see cref="MinInterval"/>) so a fast loop is not slowed down by rendering. Outside a notebook it writes a line now and then.
/// </summary>
public sealed class LiveProgress : IProgress<ProgressUpdate>, IProgress<GenerationProgress>, IProgress<ImportProgress>, IDisposable
{
    readonly object _gate = new();
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly DisplayedValue? _display;
    readonly List<double> _stepSeconds = [];
    readonly List<(int Step, double Loss)> _losses = [];
    readonly List<(int Step, Image<Rgb24> Image)> _previews = [];
    TimeSpan? _lastRender;
    TimeSpan _lastStepTime;
    int _lastStep, _total;
    double? _loss;
    string? _note;
    Image<Rgb24>? _preview;
    bool _done;

    LiveProgress(string title, int total, bool keepPreviews, TimeSpan minInterval)
    {
        Title = title;
        _total = total;
        KeepPreviews = keepPreviews;
        MinInterval = minInterval;
        NotebookFormatters.Register();
        if (KernelInvocationContext.Current != null)
            _display = Snapshot().Display("text/html");
    }

    /// <summary>Shows a new progress display in the current cell.</summary>
    /// <param name="title">What is running ("Generating", "Training UNet").</param>
    /// <param name="total">Total steps if known (reports carry it too).</param>
    /// <param name="keepPreviews">Keep every preview picture (see <see cref="Previews"/>) instead of only the latest.</param>
    /// <param name="minIntervalMs">Shortest time between two re-renders; default 250 ms, or 5 s headless (a saved
    /// output notebook keeps every update).</param>
    public static LiveProgress Show(string title, int total = 0, bool keepPreviews = false, int? minIntervalMs = null) =>
        new(title, total, keepPreviews, TimeSpan.FromMilliseconds(Math.Max(0, minIntervalMs ?? (Inputs.IsHeadless ? 5000 : 250))));

    /// <summary>The title shown in bold.</summary>
    public string Title { get; }
    /// <summary>Whether every preview is kept.</summary>
    public bool KeepPreviews { get; }
    /// <summary>Shortest time between two re-renders (the last step always renders).</summary>
    public TimeSpan MinInterval { get; }

    /// <summary>Seconds each step took (time between reports divided by the steps they advanced), for <see cref="Charts.Charts.StepTimes"/>.</summary>
    public IReadOnlyList<double> StepSeconds { get { lock (_gate) return [.. _stepSeconds]; } }
    /// <summary>Every (step, loss) reported.</summary>
    public IReadOnlyList<(int Step, double Loss)> Losses { get { lock (_gate) return [.. _losses]; } }
    /// <summary>The kept previews with their step (all of them with keepPreviews, otherwise none). Owned by this object.</summary>
    public IReadOnlyList<(int Step, Image<Rgb24> Image)> Previews { get { lock (_gate) return [.. _previews]; } }

    /// <summary>Reports progress (any thread; synchronous and cheap when throttled).</summary>
    public void Report(ProgressUpdate value)
    {
        ArgumentNullException.ThrowIfNull(value);
        ProgressSnapshot? toRender = null;
        lock (_gate)
        {
            var now = _clock.Elapsed;
            if (value.Step > _lastStep)
            {
                double per = (now - _lastStepTime).TotalSeconds / (value.Step - _lastStep);
                for (int s = _lastStep; s < value.Step; s++) _stepSeconds.Add(per);
                _lastStepTime = now;
            }
            _lastStep = value.Step;
            if (value.Total > 0) _total = value.Total;
            if (value.Loss is { } l) { _loss = l; _losses.Add((value.Step, l)); }
            if (value.Note != null) _note = value.Note;
            if (value.Preview != null)
            {
                if (KeepPreviews) _previews.Add((value.Step, value.Preview));
                else _preview?.Dispose();
                _preview = value.Preview;
            }
            bool last = _total > 0 && value.Step >= _total;
            if (last) _done = true;
            if (last || _lastRender is not { } lr || now - lr >= MinInterval)
            {
                _lastRender = now;
                toRender = Snapshot();
            }
        }
        if (toRender != null) Render(toRender);
    }

    /// <summary>Reports a pipeline step (with its latent preview when the request sets PreviewEvery).</summary>
    public void Report(GenerationProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        Report(new ProgressUpdate(value.Step, value.TotalSteps, null, value.Preview, $"timestep {value.Timestep:0.#}"));
    }

    /// <summary>Reports an import step.</summary>
    public void Report(ImportProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        Report(new ProgressUpdate(value.Completed, value.Total, null, null, value.CurrentFile));
    }

    /// <summary>Adapts any progress type: <c>progress.For&lt;TrainingProgress&gt;(p =&gt; new(p.Step, p.Total, p.Loss))</c>.</summary>
    public IProgress<T> For<T>(Func<T, ProgressUpdate> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new Adapter<T>(this, map);
    }

    /// <summary>Marks the run finished (e.g. after cancellation or when the total was unknown) and renders the final state.</summary>
    public void Complete(string? note = null)
    {
        ProgressSnapshot snap;
        lock (_gate)
        {
            _done = true;
            if (note != null) _note = note;
            if (_total == 0) _total = _lastStep;
            snap = Snapshot();
        }
        Render(snap);
    }

    ProgressSnapshot Snapshot()
    {
        var elapsed = _clock.Elapsed;
        TimeSpan? eta = _lastStep > 0 && _total > _lastStep ? TimeSpan.FromSeconds(elapsed.TotalSeconds / _lastStep * (_total - _lastStep)) : null;
        return new ProgressSnapshot(Title, _lastStep, _total, elapsed, eta, _loss, _note, _preview, _done);
    }

    void Render(ProgressSnapshot snap)
    {
        if (_display != null)
        {
            try { _display.Update(snap); }
            catch (InvalidOperationException) { } // the cell has finished: nothing left to update
        }
        else if (snap.Done || snap.Step == 1)
        {
            Console.WriteLine($"{snap.Title}: {snap.Step}/{snap.Total} ({ProgressSnapshot.Format(snap.Elapsed)}){(snap.Loss is { } l ? $" loss {l:0.####}" : "")}");
        }
    }

    /// <summary>Disposes the preview pictures.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var (_, img) in _previews) img.Dispose();
            if (!KeepPreviews) _preview?.Dispose();
            _previews.Clear();
            _preview = null;
        }
    }

    sealed class Adapter<T>(LiveProgress owner, Func<T, ProgressUpdate> map) : IProgress<T>
    {
        public void Report(T value) => owner.Report(map(value));
    }
}
