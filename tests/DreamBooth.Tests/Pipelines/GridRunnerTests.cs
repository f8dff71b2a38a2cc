using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Training;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.Pipelines;

public class GridRunnerTests(TinySd1Fixture fixture) : IClassFixture<TinySd1Fixture>
{
    static readonly GenerationRequest Base = new()
    {
        Prompt = "a red cat on a blue mat",
        NegativePrompt = "blurry",
        Width = 32,
        Height = 32,
        Steps = 3,
        GuidanceScale = 4,
        Sampler = Sampler.EulerAncestral,
        Seed = 99,
    };

    static byte[] Pixels(Image<Rgb24> img)
    {
        var bytes = new byte[img.Width * img.Height * 3];
        img.CopyPixelDataTo(bytes);
        return bytes;
    }

    byte[] Direct(StableDiffusionModel model, GenerationRequest r)
    {
        using var result = new StableDiffusionPipeline(model).Generate(r);
        var images = result.ToImages();
        try { return Pixels(images[0]); }
        finally { foreach (var i in images) i.Dispose(); }
    }

    [Fact]
    public void EachCellEqualsADirectPipelineCallWithThatSetting()
    {
        var grid = new GridRequest
        {
            Base = Base with { BatchSize = 3 }, // ignored: one image per cell
            X = XyzAxis.Parse(XyzAxisKind.Sampler, "Euler a, DDIM"),
            Y = XyzAxis.Parse(XyzAxisKind.Seed, "1-2"),
        };
        var reports = new List<GridProgress>();
        using var run = new GridRunner(fixture.Model).Run(grid, new InlineProgress<GridProgress>(reports.Add));
        Assert.True(run.Grid.IsComplete);
        Assert.Equal(["Sampler: Euler a", "Sampler: DDIM"], run.Grid.XLabels);
        Assert.Equal(["Seed: 1", "Seed: 2"], run.Grid.YLabels);
        var samplers = new[] { Sampler.EulerAncestral, Sampler.Ddim };
        var seeds = new long[] { 1, 2 };
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++)
            {
                var expected = Direct(fixture.Model, Base with { Sampler = samplers[x], Seed = seeds[y] });
                Assert.True(expected.SequenceEqual(Pixels(run.Grid[x, y]!)), $"cell ({x}, {y}) differs from its direct call");
                Assert.Equal(seeds[y], run.Parameters(x, y).Seed);
                Assert.Equal(SamplerFactory.DisplayName(samplers[x]), run.Parameters(x, y).Sampler);
            }
        Assert.Equal(1, run.First.Seed);
        // the cells differ from each other (a runner that ignored the axes would fail above or here)
        Assert.False(Pixels(run.Grid[0, 0]!).SequenceEqual(Pixels(run.Grid[1, 0]!)));
        Assert.False(Pixels(run.Grid[0, 0]!).SequenceEqual(Pixels(run.Grid[0, 1]!)));
        // progress: one report per step per cell, plus a start per cell and the end
        Assert.Equal(4 * 3 + 4 + 1, reports.Count);
        Assert.Equal(4, reports[^1].Cell);
        using var composed = run.Grid.ToImage();
        Assert.True(composed.Width > 64 && composed.Height > 64);
    }

    [Fact]
    public void PromptSearchReplaceNegativePresetStepsAndCfgBuildTheRightRequests()
    {
        using var dir = new Infrastructure.TempDir("presets");
        File.WriteAllText(dir.File("p.json"), """{"none": {"text": "", "description": "d", "source": "s"}, "mat": {"text": "ugly mat", "description": "d", "source": "s"}}""");
        var grid = new GridRequest
        {
            Base = Base,
            X = XyzAxis.Parse(XyzAxisKind.PromptSearchReplace, "mat, rug"),
            Y = XyzAxis.Parse(XyzAxisKind.NegativePreset, "none, mat"),
            Z = XyzAxis.Parse(XyzAxisKind.Steps, "5, 7"),
            Presets = NegativePromptPresets.Load(dir.File("p.json")),
        };
        grid.Validate();
        var r = GridRunner.CellRequest(grid, 1, 1, 1);
        Assert.Equal("a red cat on a blue rug", r.Prompt);
        Assert.Equal("ugly rug", r.NegativePrompt); // the preset text, with the search term replaced as well
        Assert.Equal(7, r.Steps);
        Assert.Equal("", GridRunner.CellRequest(grid, 0, 0, 0).NegativePrompt);
        var cfg = GridRunner.CellRequest(grid with { Z = XyzAxis.Parse(XyzAxisKind.CfgScale, "2.5, 9") }, 0, 0, 1);
        Assert.Equal(9, cfg.GuidanceScale);
    }

    [Fact]
    public void CheckpointAxisLoadsOneModelAtATime()
    {
        var folder = Infrastructure.TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers");
        var ckpt = Infrastructure.TestPaths.ParityPath("single-file", "tiny-sd1", "tiny-sd1.ckpt");
        var loads = new List<string>();
        var previous = new List<StableDiffusionModel>();
        StableDiffusionModel Load(string path)
        {
            // the model of the previous checkpoint must be released before the next one is loaded
            foreach (var p in previous) Assert.Empty(p.Unet.parameters()); // disposed modules hold no parameters
            loads.Add(path);
            var m = ModelSource.Load(path, options: new ModelSourceOptions { ConfigFolder = folder });
            previous.Add(m);
            return m;
        }
        var grid = new GridRequest
        {
            Base = Base,
            X = XyzAxis.Parse(XyzAxisKind.Seed, "5, 6"),
            Y = XyzAxis.Parse(XyzAxisKind.Checkpoint, $"\"{folder}\", \"{ckpt}\""),
        };
        using var run = new GridRunner(null, Load).Run(grid);
        Assert.Equal([folder, ckpt], loads);
        // the .ckpt is the same model, so its row equals the folder's row
        for (int x = 0; x < 2; x++)
            Assert.True(Pixels(run.Grid[x, 0]!).SequenceEqual(Pixels(run.Grid[x, 1]!)));
        Assert.True(Pixels(run.Grid[0, 0]!).SequenceEqual(Direct(fixture.Model, Base with { Seed = 5 })));
        Assert.Equal("Checkpoint name: tiny-sd1.ckpt", run.Grid.YLabels[1]);
    }

    [Fact]
    public void RandomSeedsAreDrawnOncePerAxisValueAndTheBaseSeedOncePerGrid()
    {
        var grid = new GridRequest
        {
            Base = Base with { Seed = -1, Steps = 1 },
            X = XyzAxis.Parse(XyzAxisKind.Seed, "-1, -1"),
            Y = XyzAxis.Parse(XyzAxisKind.CfgScale, "2, 3"),
        };
        using var run = new GridRunner(fixture.Model).Run(grid);
        Assert.NotEqual(run.Parameters(0, 0).Seed, run.Parameters(1, 0).Seed);
        Assert.Equal(run.Parameters(0, 0).Seed, run.Parameters(0, 1).Seed); // a column shares its seed
        Assert.All(new[] { run.Parameters(0, 0).Seed, run.Parameters(1, 0).Seed }, s => Assert.True(s >= 0));
        Assert.Equal($"Seed: {run.Parameters(1, 1).Seed}", run.Grid.XLabels[1]);

        var shared = grid with { X = XyzAxis.Parse(XyzAxisKind.Steps, "1, 2") };
        using var run2 = new GridRunner(fixture.Model).Run(shared);
        Assert.Equal(run2.Parameters(0, 0).Seed, run2.Parameters(1, 1).Seed); // base seed -1 is drawn once for the grid
    }

    [Fact]
    public void InvalidGridsAreRefusedWithTheAxisNamed()
    {
        var twice = new GridRequest { Base = Base, X = XyzAxis.Parse(XyzAxisKind.Seed, "1"), Y = XyzAxis.Parse(XyzAxisKind.Seed, "2") };
        Assert.Contains("\"Seed\" axis is used twice", Assert.Throws<ArgumentException>(twice.Validate).Message);
        var sampler = new GridRequest { Base = Base, X = XyzAxis.Parse(XyzAxisKind.Sampler, "Euler a, Nope"), Y = XyzAxis.Parse(XyzAxisKind.Seed, "2") };
        Assert.Contains("Valid names", Assert.Throws<ArgumentException>(sampler.Validate).Message);
        var sr = new GridRequest { Base = Base, X = XyzAxis.Parse(XyzAxisKind.PromptSearchReplace, "dog, cat"), Y = XyzAxis.Parse(XyzAxisKind.Seed, "2") };
        Assert.Throws<FormatException>(sr.Validate);
        var cancelled = new GridRequest { Base = Base, X = XyzAxis.Parse(XyzAxisKind.Steps, "1, 2"), Y = XyzAxis.Parse(XyzAxisKind.Seed, "2") };
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => new GridRunner(fixture.Model).Run(cancelled, null, cts.Token));
    }
}
