using System.Diagnostics;
using System.Text;
using System.Text.Json;
using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests.Notebooks;

/// <summary>Notebook runs share the two cores; never run them in parallel with each other.</summary>
[CollectionDefinition("notebooks", DisableParallelization = true)]
public sealed class NotebookCollection;

/// <summary>
/// Runs every notebooks/*.ipynb top to bottom in the real .NET Interactive kernel (dotnet-repl, the same C# kernel and
/// FSharp.Core as users get), headless (DREAMBOOTH_HEADLESS=1: every input takes its default), on the tiny model, and
/// checks the saved output notebook: no cell error, and the pictures/charts each notebook is meant to show.
/// </summary>
[Collection("notebooks")]
public sealed class NotebookExecutionTests
{
    public const string ReplVersion = "0.3.259";
    public const string InstallHint = "install it with: dotnet tool install -g dotnet-repl --version " + ReplVersion +
        " (and make sure ~/.dotnet/tools is on PATH or dotnet-repl is there); .ci/run does this before the tests";

    /// <summary>What each notebook must show (at least): images = inline PNGs, charts = inline SVGs.</summary>
    static readonly Dictionary<string, (int Images, int Charts)> Expected = new()
    {
        ["00-quickstart.ipynb"] = (12, 1),        // 10 import thumbnails, sampler × seed and recontextualisation grids; loss chart
        ["01-model-and-session.ipynb"] = (10, 0), // the imported demo subject as thumbnails
        ["02-instance-images.ipynb"] = (23, 0),   // 10 report thumbnails, 10 crops, original + centre + smart crop
        ["03-train.ipynb"] = (8, 1),              // 4 class images, 2 × 2 validation samples; loss + LR chart
        ["04-test-the-model.ipynb"] = (4, 0),
        ["05-grids.ipynb"] = (28, 0),             // 4 × 3 sampler × seed, 4 × 3 steps × CFG, 4 prompt S/R cells
        ["06-inside-diffusion.ipynb"] = (3, 2),
        ["07-export.ipynb"] = (10, 0),            // trained, diffusers, single file, LoRA at 3 strengths, side by side (4)
    };

    public static string? FindRepl()
    {
        var candidates = new List<string>();
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            candidates.Add(Path.Combine(dir, "dotnet-repl"));
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        candidates.Add(Path.Combine(home, ".dotnet", "tools", "dotnet-repl"));
        if (Environment.GetEnvironmentVariable("DOTNET_CLI_HOME") is { Length: > 0 } cliHome)
            candidates.Add(Path.Combine(cliHome, ".dotnet", "tools", "dotnet-repl"));
        return candidates.FirstOrDefault(File.Exists);
    }

    [Fact]
    public void Every_notebook_has_expectations()
    {
        foreach (var f in NotebookFiles.All)
            Assert.True(Expected.ContainsKey(Path.GetFileName(f)),
                $"{Path.GetFileName(f)} has no entry in NotebookExecutionTests.Expected: add the pictures/charts it must show.");
    }

    [Fact]
    public void Dotnet_repl_is_installed()
    {
        Assert.True(FindRepl() != null, "dotnet-repl was not found; " + InstallHint);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public async Task Notebook_runs_in_the_real_kernel(string name)
    {
        var repl = FindRepl();
        Assert.True(repl != null, $"cannot run {name}: dotnet-repl was not found; " + InstallHint);
        var engine = Path.Combine(TestPaths.RepoRoot, "artifacts", "notebooks", "DreamBooth.Notebooks.dll");
        Assert.True(File.Exists(engine), $"{engine} is missing: build the solution (or notebooks/build-engine.sh) first.");

        using var tmp = TestPaths.NewTempDir("nbrun");
        var output = Path.Combine(tmp.Path, name);
        var psi = new ProcessStartInfo(repl!)
        {
            WorkingDirectory = NotebookFiles.Folder, // relative #r paths resolve against the working directory
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--run", name, "--exit-after-run", "--output-path", output }) psi.ArgumentList.Add(a);
        psi.Environment["DREAMBOOTH_HEADLESS"] = "1";
        psi.Environment["DREAMBOOTH_MODEL"] = NotebookFiles.Model;
        psi.Environment["DREAMBOOTH_SESSIONS"] = Path.Combine(tmp.Path, "sessions");
        psi.Environment["DREAMBOOTH_OUTPUTS"] = Path.Combine(tmp.Path, "outputs");
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment.Remove("HF_TOKEN");

        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{name} did not finish within 5 minutes.");
        }
        var log = Tail(await stdout + await stderr, 4000);

        Assert.True(File.Exists(output), $"{name}: dotnet-repl wrote no output notebook (exit {p.ExitCode}).\n{log}");
        var cells = ReadOutputs(output);
        var errors = cells.Where(c => c.Errors.Count > 0).Select(c => $"cell {c.Index}: {string.Join(" | ", c.Errors)}").ToList();
        Assert.True(errors.Count == 0, $"{name}: cell errors:\n{string.Join("\n", errors)}");
        Assert.True(p.ExitCode == 0, $"{name}: dotnet-repl exited with {p.ExitCode}.\n{log}");

        var html = string.Concat(cells.SelectMany(c => c.Outputs));
        int images = Count(html, "data:image/png;base64,") + cells.Sum(c => c.PngOutputs);
        int charts = Count(html, "<svg");
        var (wantImages, wantCharts) = Expected.TryGetValue(name, out var e) ? e : (1, 0);
        Assert.True(images >= wantImages, $"{name}: expected at least {wantImages} inline PNG images in the outputs, found {images}.");
        Assert.True(charts >= wantCharts, $"{name}: expected at least {wantCharts} SVG charts in the outputs, found {charts}.");
    }

    public static TheoryData<string> Names => NotebookFiles.Names;

    sealed record CellOutputs(int Index, List<string> Outputs, List<string> Errors, int PngOutputs);

    static List<CellOutputs> ReadOutputs(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var result = new List<CellOutputs>();
        int i = 0;
        foreach (var cell in doc.RootElement.GetProperty("cells").EnumerateArray())
        {
            i++;
            var outs = new List<string>();
            var errs = new List<string>();
            int pngs = 0;
            if (cell.TryGetProperty("outputs", out var outputs))
                foreach (var o in outputs.EnumerateArray())
                {
                    var type = o.TryGetProperty("output_type", out var t) ? t.GetString() : null;
                    if (type == "error")
                        errs.Add($"{Str(o, "ename")}: {Str(o, "evalue")}");
                    if (o.TryGetProperty("data", out var data))
                        foreach (var kv in data.EnumerateObject())
                        {
                            if (kv.Name == "image/png") pngs++;
                            outs.Add(Text(kv.Value));
                        }
                }
            result.Add(new CellOutputs(i, outs, errs, pngs));
        }
        return result;
    }

    static string Str(JsonElement o, string name) => o.TryGetProperty(name, out var v) ? Text(v) : "";

    static string Text(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString() ?? "",
        JsonValueKind.Array => string.Concat(v.EnumerateArray().Select(Text)),
        _ => v.ToString(),
    };

    static int Count(string text, string what)
    {
        int n = 0, i = 0;
        while ((i = text.IndexOf(what, i, StringComparison.Ordinal)) >= 0) { n++; i += what.Length; }
        return n;
    }

    static string Tail(string s, int n) => s.Length <= n ? s : "…" + s[^n..];
}
