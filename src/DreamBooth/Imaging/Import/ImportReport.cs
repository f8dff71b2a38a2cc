using System.Globalization;
using System.Text;

namespace DreamBooth.Imaging.Import;

/// <summary>Whether a file ended up in the session.</summary>
public enum ImportStatus
{
    Imported,
    Skipped,
}

/// <summary>How serious an issue is: Error = the file was skipped; Warning = imported, but you should look at it.</summary>
public enum IssueSeverity
{
    Info,
    Warning,
    Error,
}

/// <summary>The kind of finding, for filtering in notebooks.</summary>
public enum IssueKind
{
    FileNotFound,
    FileTooLarge,
    NotAnImage,
    UnsupportedFormat,
    Truncated,
    Corrupt,
    DecompressionBomb,
    TooSmall,
    Blurry,
    NearDuplicate,
    ExtremeAspectRatio,
    Animated,
    CmykConverted,
    Orientation,
    Transparency,
    ExtensionMismatch,
    Renamed,
    AlreadyPresent,
    Caption,
    OrphanCaption,
    OrphanMask,
    Mask,
    WriteFailed,
}

/// <summary>Where an image's caption came from.</summary>
public enum CaptionSource
{
    /// <summary>A <c>name.txt</c> file beside the image.</summary>
    Sidecar,

    /// <summary>The image's file name, minus extension and " (n)" counter.</summary>
    FileName,

    /// <summary>The one instance prompt from the options.</summary>
    InstancePrompt,
}

/// <summary>One finding about one file.</summary>
public sealed record ImageIssue(IssueSeverity Severity, IssueKind Kind, string Message)
{
    public override string ToString() => $"{Severity.ToString().ToLowerInvariant()}: {Message}";
}

/// <summary>The square region (in the EXIF-oriented source image) that was kept.</summary>
public sealed record CropBox(int X, int Y, int Size);

/// <summary>Progress of a long import: files done so far, total files, and the file being worked on.</summary>
public sealed record ImportProgress(int Completed, int Total, string CurrentFile);

/// <summary>What happened to one file: status, output, caption, measurements and issues.</summary>
public sealed class ImageReport
{
    readonly List<ImageIssue> _issues = [];

    internal ImageReport(string sourcePath) => SourcePath = sourcePath;

    /// <summary>The file as the user gave it (zip entries as <c>archive.zip!/dir/name.jpg</c>).</summary>
    public string SourcePath { get; }

    public ImportStatus Status { get; internal set; } = ImportStatus.Skipped;

    /// <summary>The PNG written into the destination (null when skipped).</summary>
    public string? OutputPath { get; internal set; }

    /// <summary>The caption sidecar written beside the PNG (null when none was written).</summary>
    public string? CaptionPath { get; internal set; }

    /// <summary>The subject mask written beside the PNG (<c>name-masklabel.png</c>; null when the source had none).</summary>
    public string? MaskPath { get; internal set; }

    public string? Caption { get; internal set; }

    public CaptionSource? CaptionSource { get; internal set; }

    /// <summary>The detected format (by content).</summary>
    public ImageContainer Format { get; internal set; }

    /// <summary>Size after EXIF orientation (header size when the file was refused before decoding); 0 when unknown.</summary>
    public int Width { get; internal set; }

    public int Height { get; internal set; }

    public CropBox? Crop { get; internal set; }

    /// <summary>Sharpness: variance of the Laplacian (see <see cref="ImportOptions.BlurThreshold"/>); null when not measured.</summary>
    public double? Sharpness { get; internal set; }

    /// <summary>64-bit DCT perceptual hash of the oriented image; null when not decoded.</summary>
    public ulong? PerceptualHash { get; internal set; }

    public IReadOnlyList<ImageIssue> Issues => _issues;

    /// <summary>The worst severity among the issues (Info when there are none).</summary>
    public IssueSeverity WorstSeverity => _issues.Count == 0 ? IssueSeverity.Info : _issues.Max(i => i.Severity);

    internal void Add(IssueSeverity severity, IssueKind kind, string message) => _issues.Add(new ImageIssue(severity, kind, message));

    internal void Skip(IssueKind kind, string message)
    {
        Status = ImportStatus.Skipped;
        Add(IssueSeverity.Error, kind, message);
    }

    /// <summary>One line for the file plus one indented line per issue.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        if (Status == ImportStatus.Imported)
        {
            sb.Append(inv, $"[ok]   {SourcePath} -> {Path.GetFileName(OutputPath)}");
            if (Width > 0) sb.Append(inv, $" ({Width}x{Height}");
            if (Sharpness is { } s) sb.Append(inv, $", sharpness {s:F0}");
            if (Width > 0) sb.Append(')');
            if (Caption != null) sb.Append(inv, $", caption \"{Caption}\" ({CaptionSource switch { Import.CaptionSource.Sidecar => "caption file", Import.CaptionSource.FileName => "file name", _ => "instance prompt" }})");
            if (MaskPath != null) sb.Append(", with its mask");
        }
        else
        {
            sb.Append(inv, $"[skip] {SourcePath}");
        }
        foreach (var i in _issues) sb.Append("\n       ").Append(i.ToString());
        return sb.ToString();
    }

    public override string ToString() => ToText();
}

/// <summary>A flat, table-friendly view of one <see cref="ImageReport"/>.</summary>
public sealed record ImportRow(
    string File,
    ImportStatus Status,
    string? Output,
    string? Caption,
    CaptionSource? CaptionSource,
    int Width,
    int Height,
    double? Sharpness,
    IssueSeverity? WorstIssue,
    string Issues);

/// <summary>Counts over an import.</summary>
public sealed record ImportSummary(
    int Files,
    int Imported,
    int Skipped,
    int Warnings,
    IReadOnlyDictionary<IssueKind, int> IssueCounts,
    IReadOnlyList<(string First, string Second, int Distance)> NearDuplicatePairs);

/// <summary>The result of an import: a line per file, a summary and a steps recommendation. <see cref="ToText"/> renders it
/// for the CLI; the properties are the structured form for notebooks.</summary>
public sealed class ImportReport
{
    internal ImportReport(string destination, ImportOptions options, IReadOnlyList<ImageReport> images,
        IReadOnlyList<(string, string, int)> pairs)
    {
        Destination = destination;
        Options = options;
        Images = images;
        var counts = images.SelectMany(i => i.Issues).Where(i => i.Severity != IssueSeverity.Info)
            .GroupBy(i => i.Kind).ToDictionary(g => g.Key, g => g.Count());
        int imported = images.Count(i => i.Status == ImportStatus.Imported);
        Summary = new ImportSummary(images.Count, imported, images.Count - imported,
            images.Where(i => i.Status == ImportStatus.Imported).Sum(i => i.Issues.Count(x => x.Severity == IssueSeverity.Warning)),
            counts, pairs);
        Steps = StepsCalculator.Recommend(imported);
    }

    public string Destination { get; }

    public ImportOptions Options { get; }

    /// <summary>One entry per input file, in input order.</summary>
    public IReadOnlyList<ImageReport> Images { get; }

    public ImportSummary Summary { get; }

    /// <summary>Training-steps recommendation for the imported images, with its reasoning.</summary>
    public StepsRecommendation Steps { get; }

    /// <summary>One flat row per file (for notebook tables and data frames).</summary>
    public IReadOnlyList<ImportRow> ToRows() => Images.Select(i => new ImportRow(
        i.SourcePath, i.Status, i.OutputPath, i.Caption, i.CaptionSource, i.Width, i.Height, i.Sharpness,
        i.Issues.Count == 0 ? null : i.WorstSeverity,
        string.Join("; ", i.Issues.Select(x => x.ToString())))).ToList();

    public IEnumerable<ImageReport> Imported => Images.Where(i => i.Status == ImportStatus.Imported);

    public IEnumerable<ImageReport> Skipped => Images.Where(i => i.Status == ImportStatus.Skipped);

    /// <summary>The whole report as plain text: header, a block per file, summary, steps advice.</summary>
    public string ToText()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(inv, $"Imported {Summary.Imported} of {Summary.Files} file(s) into {Destination} ")
          .Append(inv, $"({Options.Resolution}x{Options.Resolution}, {Options.CropMode.ToString().ToLowerInvariant()} crop).\n");
        foreach (var img in Images) sb.Append(img.ToText()).Append('\n');
        sb.Append(inv, $"Summary: {Summary.Imported} imported, {Summary.Skipped} skipped, {Summary.Warnings} warning(s) on imported images");
        if (Summary.IssueCounts.Count > 0)
            sb.Append(" (").Append(string.Join(", ", Summary.IssueCounts.OrderBy(k => k.Key).Select(k => $"{Describe(k.Key)}: {k.Value}"))).Append(')');
        sb.Append(".\n");
        foreach (var (a, b, d) in Summary.NearDuplicatePairs)
            sb.Append(inv, $"  near-duplicates: {a} ~ {b} (pHash distance {d}/64)\n");
        sb.Append(Steps.ToText());
        return sb.ToString();
    }

    public override string ToString() => ToText();

    static string Describe(IssueKind k) => k switch
    {
        IssueKind.NearDuplicate => "near-duplicate",
        IssueKind.TooSmall => "too small",
        IssueKind.ExtremeAspectRatio => "heavily cropped",
        IssueKind.DecompressionBomb => "too many pixels",
        IssueKind.NotAnImage => "not an image",
        IssueKind.FileNotFound => "not found",
        _ => k.ToString().ToLowerInvariant(),
    };
}
