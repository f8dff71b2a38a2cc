using DreamBooth.Training;
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
        // the demo subject's caption files are used: each image trains with its own caption (cell and background named)
        Assert.All(r.Import.Imported, i => Assert.Equal(File.ReadAllText(Path.ChangeExtension(i.SourcePath, ".txt")).Trim(), i.Caption));
        Assert.Equal(DemoSubject.Instances.Select(DemoSubject.Caption).Order(), r.Import.Imported.Select(i => i.Caption!).Order());
        Assert.True(r.Import.Imported.Select(i => i.Caption).Distinct().Count() >= 8);
        // and their subject masks, for the quickstart's masked training
        Assert.True(options.MaskedLoss);
        Assert.All(r.Import.Imported, i => Assert.True(File.Exists(i.MaskPath), $"{i.SourcePath}: no mask imported"));

        // a folder without caption files trains every image with the instance prompt
        var bare = Path.Combine(dir.Path, "bare");
        Directory.CreateDirectory(bare);
        foreach (var f in Directory.GetFiles(options.InstanceImages, "*.png").Where(f => !MaskFiles.IsMask(f)).Take(3)) File.Copy(f, Path.Combine(bare, Path.GetFileName(f)));
        var b = Quickstart.Run(options with { InstanceImages = bare, OutputFolder = Path.Combine(dir.Path, "bare-out") });
        Assert.All(b.Import.Imported, i => Assert.Equal(DemoSubject.InstancePrompt, i.Caption));
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

public class QuickstartCaptionedPriorTests
{
    [Fact]
    public void TrainWithCaptionedPriorGivesEachClassImageADemoCaptionWithoutTheIdentifier()
    {
        using var dir = TestPaths.NewTempDir();
        var options = QuickstartOptions.Smoke(QuickstartTests.TinyModel, Path.Combine(TestPaths.RepoRoot, "data", "demo-subject"), dir.Path)
            with { Steps = 1, TextEncoderSteps = 0, ClassImages = 3, ClassPromptsFromCaptions = true, BatchSize = 2, TimestepBias = DreamBooth.Training.Optim.TimestepBias.Parse("later:2:0.5") };
        using var model = DreamBooth.Loading.ModelSource.Load(options.Model);
        var (session, _, _, training) = Quickstart.Train(options, model, Path.Combine(dir.Path, "session"));
        Assert.True(training.Completed);
        Assert.True(session.File.Options.ClassPromptsFromCaptions);
        Assert.Equal(2, session.File.Options.BatchSize);
        Assert.Equal(options.TimestepBias, session.File.Options.TimestepBias); // the quickstart's timestep sampling reaches the trainer
        Assert.Equal(DreamBooth.Training.Optim.TimestepBiasStrategy.Later, session.File.Options.TimestepBias.Strategy);
        var concept = session.File.Concepts.Single();
        var captions = Directory.GetFiles(session.ClassFolder(concept), "*.txt").Order(StringComparer.Ordinal).Select(f => File.ReadAllText(f).Trim()).ToArray();
        Assert.Equal(3, captions.Length);
        var expected = DemoSubject.Instances.Select(i => DreamBench.ClassVersion(DemoSubject.Caption(i))).ToHashSet();
        Assert.All(captions, c => Assert.Contains(c, expected));
        Assert.All(captions, c => Assert.DoesNotContain(DemoSubject.Identifier, c));
    }
}

public class DreamBenchTests
{
    [Fact]
    public void EvaluateScoresEveryImageAndBreaksFidelityIntoItsTerms()
    {
        using var model = DreamBooth.Loading.ModelSource.Load(QuickstartTests.TinyModel);
        var prompts = DemoSubject.RecontextualisationPrompts.Take(2).ToList();
        var r = DreamBench.Evaluate(model, "base", new DreamBenchOptions { Seeds = [1, 2], Steps = 2 }, prompts);
        Assert.Equal(4, r.SubjectImages);
        Assert.Equal(4, r.ClassImages);
        foreach (var v in new[] { r.SubjectFidelity, r.PromptFidelity, r.Leakage, r.Outline, r.Pattern, r.Color })
            Assert.InRange(v, 0.0, 1.0);
        // per image the score (a geometric mean of the terms) is at most their arithmetic mean, so the means obey it too
        Assert.True(r.SubjectFidelity <= (r.Outline + r.Pattern + r.Color) / 3 + 1e-9, r.ToString());
        Assert.Contains("outline", r.ToString());
        Assert.Equal("a diamond in the top right on a red background", DreamBench.ClassVersion(prompts[0]));
        Assert.Throws<ArgumentException>(() => DreamBench.Evaluate(model, "x", new DreamBenchOptions { Seeds = [] }, prompts));
    }
}

public class DreamBenchCeilingTests
{
    [Fact]
    public void TheVaeRoundTripOfTheRealSubjectScoresHighAndNamesItsWeakestPrompt()
    {
        using var model = DreamBooth.Loading.ModelSource.Load(QuickstartTests.TinyModel);
        var prompts = DemoSubject.RecontextualisationPrompts.Where(p => p.Contains(" black ") || p.Contains(" orange ")).ToList();
        var c = DreamBench.VaeCeiling(model, prompts);
        Assert.Equal(prompts.Count, c.Images);
        // the committed VAE keeps the subject on black (measured ≥ 0.98) and blurs its outline into orange (≈ 0.7)
        Assert.InRange(c.SubjectFidelity, 0.7, 1.0);
        Assert.Contains(" orange ", c.LowestPrompt);
        Assert.True(c.Lowest < c.SubjectFidelity);
        Assert.InRange(c.Pattern, 0.9, 1.0);
        Assert.Contains("VAE round trip", c.ToString());
        var e = Assert.Throws<ArgumentException>(() => DreamBench.VaeCeiling(model, ["a zwx diamond"]));
        Assert.Contains("must name a background and a position", e.Message);
    }
}

public class DreamBenchLatentContrastTests
{
    [Fact]
    public void TheLatentContrastIsADistanceAndShowsWhyWhiteIsTheHardBackground()
    {
        using var model = DreamBooth.Loading.ModelSource.Load(QuickstartTests.TinyModel);
        var c = DreamBench.LatentContrast(model);
        Assert.Equal(TinyWorldPalette.All.Count, c.Colors.Count);
        foreach (var a in c.Colors)
            foreach (var b in c.Colors)
            {
                Assert.Equal(c.Distance(a, b), c.Distance(b, a), 9);
                if (a == b) Assert.Equal(0.0, c.Distance(a, b), 9);
                else Assert.True(c.Distance(a, b) > 0.1, $"{a}/{b}: {c.Distance(a, b)}");
            }
        // measured on the committed VAE (README, docs/tiny-world-dreambench.md): purple sits near blue and white, far from red and black; white is
        // the benchmark background where the subject's colours are closest to the background, red and black the farthest
        var bgs = DreamBench.Backgrounds();
        Assert.Equal([NamedColor.Red, NamedColor.Orange, NamedColor.White, NamedColor.Black], bgs);
        Assert.True(c.Distance(NamedColor.Purple, NamedColor.White) < c.Distance(NamedColor.Purple, NamedColor.Red));
        Assert.True(c.Distance(NamedColor.Purple, NamedColor.Blue) < c.Distance(NamedColor.Purple, NamedColor.Green));
        Assert.True(c.SubjectContrast(NamedColor.White) < Math.Min(c.SubjectContrast(NamedColor.Red), c.SubjectContrast(NamedColor.Black)));
        Assert.Contains("white", c.ToString());
        Assert.Contains("blue (photos)", c.ToString());
    }
}

public class DreamBenchAverageTests
{
    [Fact]
    public void AveragingRunsMeansEveryScoreAndKeepsEachSeedsFidelity()
    {
        var a = new DreamBenchScores("x (seed 1)", 0.6, 1.0, 0.25, 32, 32) { Outline = 0.8, Pattern = 0.9, Color = 0.4 };
        var b = new DreamBenchScores("x (seed 2)", 0.2, 0.5, 0.75, 32, 32) { Outline = 0.4, Pattern = 0.5, Color = 0.0 };
        var m = DreamBenchScores.Average("x", [a, b]);
        Assert.Equal(0.4, m.SubjectFidelity, 12);
        Assert.Equal(0.75, m.PromptFidelity, 12);
        Assert.Equal(0.5, m.Leakage, 12);
        Assert.Equal((0.6, 0.7, 0.2), (Math.Round(m.Outline, 12), Math.Round(m.Pattern, 12), Math.Round(m.Color, 12)));
        Assert.Equal(64, m.SubjectImages);
        Assert.Equal([0.6, 0.2], m.PerSeedFidelity);
        Assert.Contains("per seed 0.600 / 0.200", m.ToString());
        Assert.DoesNotContain("per seed", a.ToString());
        Assert.Throws<ArgumentException>(() => DreamBenchScores.Average("x", []));
    }

    [Fact]
    public void BadTrainingSeedsAreRefusedByTheCommandLine()
    {
        var r = DreamBooth.Tests.Cli.CliHarness.Run("tinyworld", "dreambench", "--train-seeds", "1234,one");
        Assert.NotEqual(0, r.Code);
        Assert.Contains("--train-seeds", r.Err);
        Assert.Contains("'one'", r.Err);
        var lr = DreamBooth.Tests.Cli.CliHarness.Run("tinyworld", "dreambench", "--lr", "2");
        Assert.NotEqual(0, lr.Code);
        Assert.Contains("--lr must be in (0, 1)", lr.Err);
        foreach (var command in new[] { "dreambench", "quickstart" })
        {
            var args = command == "dreambench" ? new[] { "tinyworld", command, "--timestep-bias", "sooner:2" } : new[] { command, "--timestep-bias", "sooner:2" };
            var bias = DreamBooth.Tests.Cli.CliHarness.Run(args);
            Assert.NotEqual(0, bias.Code);
            Assert.Contains("--timestep-bias: timestep bias 'sooner:2': unknown strategy 'sooner'", bias.Err);
            var batch = DreamBooth.Tests.Cli.CliHarness.Run([.. args.Take(args.Length - 2), "--batch-size", "0"]);
            Assert.NotEqual(0, batch.Code);
            Assert.Contains("--batch-size must be ≥ 1 (got 0)", batch.Err);
        }
        foreach (var args in new[] { new[] { "quickstart", "--threads", "0" }, ["tinyworld", "dreambench", "--threads", "0"] })
        {
            var threads = DreamBooth.Tests.Cli.CliHarness.Run(args);
            Assert.NotEqual(0, threads.Code);
            Assert.Contains("--threads must be ≥ 1 (got 0)", threads.Err);
        }
    }
}
