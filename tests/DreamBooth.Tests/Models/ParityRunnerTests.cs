using DreamBooth.Loading;
using DreamBooth.Parity;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;
using Xunit.Abstractions;

namespace DreamBooth.Tests.Models;

/// <summary>The fixture runner the CLI uses (`dreambooth parity`), over every shared fixture.</summary>
public class ParityRunnerTests(ITestOutputHelper output)
{
    [Fact]
    public void EverySharedFixturePasses()
    {
        var reports = ParityRunner.Run(TestPaths.Parity);
        foreach (var r in reports) output.WriteLine($"{(r.Passed ? "PASS" : "FAIL")} {r.Kind} worst {r.WorstError:E2} {r.Fixture} {r.Error}");
        Assert.True(reports.Count >= 23, $"only {reports.Count} fixtures found");
        Assert.Contains(reports, r => r.Kind == "DreamBoothLoss");
        Assert.All(reports, r => Assert.True(r.Passed, $"{r.Fixture}: {r.Error} {string.Join("; ", r.Comparisons.Where(c => !c.Passed).Take(3).Select(c => c.Name + " " + c.Note))}"));
    }

    [Fact]
    public void AWrongOutputFailsAndTheCliExitsNonZero()
    {
        using var dir = TestPaths.NewTempDir();
        var src = TestPaths.ParityPath("vae-tiny");
        var dst = Path.Combine(dir.Path, "vae-broken");
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(src)) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        var outputs = Safetensors.Load(Path.Combine(dst, "outputs.safetensors"));
        outputs["decoded"] = outputs["decoded"] + 1e-3f;
        Safetensors.Save(Path.Combine(dst, "outputs.safetensors"), outputs);
        var report = Assert.Single(ParityRunner.Run(dir.Path));
        Assert.False(report.Passed);
        var failed = Assert.Single(report.Comparisons, c => !c.Passed);
        Assert.Equal("decoded", failed.Name);
        Assert.InRange(failed.MaxAbsError, 9e-4, 1.1e-3);

        var stdout = new StringWriter();
        int rc = DreamBooth.Cli.Cli.Run(DreamBooth.Cli.Program.CreateRoot(), ["parity", dir.Path], stdout, stdout);
        Assert.Equal(1, rc);
        Assert.Contains("FAIL", stdout.ToString());
        Assert.Contains("0 passed, 1 failed", stdout.ToString());
    }
}
