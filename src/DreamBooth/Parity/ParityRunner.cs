using DreamBooth.Loading;

namespace DreamBooth.Parity;

/// <summary>
/// Runs fixture folders in the <c>shared/parity</c> format: model folders (UNet, VAE, CLIP text), tokenizer case files,
/// scheduler trajectories and the DreamBooth loss case. A folder that is none of these is searched for fixtures below it.
/// </summary>
public static class ParityRunner
{
    public enum FixtureKind { Model, Tokenizer, Scheduler, DreamBoothLoss }

    /// <summary>What kind of fixture a folder is, or null.</summary>
    public static FixtureKind? Detect(string folder)
    {
        if (File.Exists(Path.Combine(folder, "cases.json"))) return FixtureKind.Tokenizer;
        if (File.Exists(Path.Combine(folder, "scheduler_config.json")) && File.Exists(Path.Combine(folder, "outputs.safetensors"))) return FixtureKind.Scheduler;
        if (Directory.EnumerateFiles(folder, "scheduler_config.*.json").Any() && File.Exists(Path.Combine(folder, "outputs.safetensors"))) return FixtureKind.DreamBoothLoss;
        if (File.Exists(Path.Combine(folder, "config.json")) && File.Exists(Path.Combine(folder, "outputs.safetensors"))) return FixtureKind.Model;
        return null;
    }

    /// <summary>Runs every fixture at or below <paramref name="path"/>; errors in one fixture become a failed report, not an exception.</summary>
    public static IReadOnlyList<ParityReport> Run(string path, IProgress<ParityReport>? progress = null, CancellationToken cancellationToken = default)
    {
        var full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
            throw new ModelLoadException(full, "fixture folder not found");
        var reports = new List<ParityReport>();
        Visit(full, reports, progress, cancellationToken);
        if (reports.Count == 0)
            throw new ModelLoadException(full, "no parity fixtures found here (expected model folders with inputs/outputs.safetensors, cases.json or scheduler folders)");
        return reports;
    }

    static void Visit(string folder, List<ParityReport> reports, IProgress<ParityReport>? progress, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var kind = Detect(folder);
        if (kind is null)
        {
            foreach (var sub in Directory.EnumerateDirectories(folder).OrderBy(d => d, StringComparer.Ordinal))
                Visit(sub, reports, progress, ct);
            return;
        }
        ParityReport report;
        try
        {
            report = RunOne(folder, kind.Value);
        }
        catch (Exception e) when (e is ModelLoadException or IOException or InvalidOperationException or ArgumentException or KeyNotFoundException or System.Text.Json.JsonException or NotSupportedException)
        {
            report = new ParityReport(folder, kind.Value.ToString(), [], e.Message);
        }
        reports.Add(report);
        progress?.Report(report);
    }

    /// <summary>Runs one fixture folder of a known kind.</summary>
    public static ParityReport RunOne(string folder, FixtureKind kind) => kind switch
    {
        FixtureKind.Model => ModelParity.Run(folder),
        FixtureKind.Tokenizer => TokenizerParity.Run(folder),
        FixtureKind.Scheduler => SchedulerParity.Run(folder),
        FixtureKind.DreamBoothLoss => DreamBoothLossParity.Run(folder),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown fixture kind"),
    };

}
