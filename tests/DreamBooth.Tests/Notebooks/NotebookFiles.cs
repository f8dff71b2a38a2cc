using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests.Notebooks;

/// <summary>The committed notebooks and the model they run on in tests.</summary>
public static class NotebookFiles
{
    public static string Folder => Path.Combine(TestPaths.RepoRoot, "notebooks");

    public static IReadOnlyList<string> All =>
        Directory.GetFiles(Folder, "*.ipynb").OrderBy(f => f, StringComparer.Ordinal).ToList();

    /// <summary>xunit data: one row per notebook file name.</summary>
    public static TheoryData<string> Names
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var f in All) data.Add(Path.GetFileName(f));
            return data;
        }
    }

    /// <summary>The embedded tiny model when it is in the checkout (what users get), else the tiny-sd1 parity fixture.</summary>
    public static string Model
    {
        get
        {
            var embedded = Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd");
            return File.Exists(Path.Combine(embedded, "model_index.json"))
                ? embedded
                : TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers");
        }
    }
}
