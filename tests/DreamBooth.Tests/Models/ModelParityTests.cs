using DreamBooth.Parity;
using DreamBooth.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DreamBooth.Tests.Models;

public class ModelParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("unet-sd1-tiny")]
    [InlineData("vae-tiny")]
    [InlineData("clip-text-tiny")]
    public void FixtureMatchesReference(string fixture)
    {
        var report = ModelParity.Run(TestPaths.ParityPath(fixture));
        foreach (var c in report.Comparisons)
            output.WriteLine($"{c.Name}: max abs err {c.MaxAbsError:E2} {(c.Passed ? "ok" : "FAIL " + c.Note)}");
        Assert.True(report.Passed, string.Join("\n", report.Comparisons.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.MaxAbsError:E3} {c.Note}")));
        Assert.True(report.Comparisons.Count >= 4);
    }
}
