namespace DreamBooth.Cli;

/// <summary>Finds the repository's <c>data/</c> files (default model, negative-prompt presets) from any working directory.</summary>
public static class CliPaths
{
    /// <summary>The default model of <c>generate</c> / <c>grid</c>, relative to the repository.</summary>
    public const string DefaultModel = "data/models/tiny-sd";

    /// <summary>The negative-prompt presets file, relative to the repository.</summary>
    public const string NegativePresets = "data/negative-prompts.json";

    static readonly Lazy<string?> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DreamBoothNotebooks.sln"))) return dir.FullName;
        return null;
    });

    /// <summary>The repository root (the folder with DreamBoothNotebooks.sln above the CLI's binaries), if any.</summary>
    public static string? RepoRoot => Root.Value;

    /// <summary>
    /// <paramref name="relative"/> as given when it exists from the working directory, else under the repository root;
    /// unchanged when neither exists (the caller's error then names the path as given).
    /// </summary>
    public static string Resolve(string relative)
    {
        if (Path.IsPathRooted(relative) || File.Exists(relative) || Directory.Exists(relative)) return relative;
        if (RepoRoot is { } root)
        {
            var p = Path.Combine(root, relative);
            if (File.Exists(p) || Directory.Exists(p)) return p;
        }
        return relative;
    }
}
