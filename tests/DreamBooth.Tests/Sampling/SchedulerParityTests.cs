using DreamBooth.Parity;
using DreamBooth.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DreamBooth.Tests.Sampling;

public sealed class SchedulerParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Folders()
    {
        var data = new TheoryData<string>();
        var root = TestPaths.ParityPath("schedulers");
        foreach (var d in Directory.GetDirectories(root).OrderBy(x => x, StringComparer.Ordinal))
            data.Add(Path.GetFileName(d));
        return data;
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void Fixture_matches_diffusers(string folder)
    {
        var report = SchedulerParity.Run(TestPaths.ParityPath("schedulers", folder));
        foreach (var c in report.Comparisons)
            output.WriteLine($"{c.Name,-32} max|err| {c.MaxAbsError:E3}  {(c.Passed ? "ok" : "FAIL")} {c.Note}");
        output.WriteLine($"worst {report.WorstError:E3}");
        Assert.True(report.Error is null, report.Error);
        Assert.True(report.Passed, string.Join("\n", report.Comparisons.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.MaxAbsError:E3} {c.Note}")));
    }
}
