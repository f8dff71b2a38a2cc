using DreamBooth.Imaging;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.TinyWorld;
using SixLabors.ImageSharp;

namespace DreamBooth.Tests.TinyWorld;

public class QuickstartTests
{
    public static string TinyModel => Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd");

    [Fact]
    public void SmokeRunWritesSessionGridsAndChart()
    {
        using var dir = TestPaths.NewTempDir();
        var options = QuickstartOptions.Smoke(TinyModel, Path.Combine(TestPaths.RepoRoot, "data", "demo-subject"), dir.Path);
        var r = Quickstart.Run(options);
        Assert.True(r.Training.Completed);
        Assert.Equal(options.Steps, r.Training.Step);
        Assert.Equal(10, r.Import.Summary.Imported);
        foreach (var f in new[] { r.SamplerSeedGrid, r.RecontextualisationGrid, r.LossChart })
        {
            Assert.True(File.Exists(f), f);
            using var img = Image.Load(f);
            Assert.True(img.Width > 100 && img.Height > 100);
        }
        Assert.NotNull(PngInfo.ReadParameters(r.SamplerSeedGrid));
        // running it again replaces its own session
        var again = Quickstart.Run(options);
        Assert.True(again.Training.Completed);
    }
}
