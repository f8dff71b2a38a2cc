using DreamBooth.Tests.Imaging.Import;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using DreamBooth.Training.Optim;
using static DreamBooth.Tests.Cli.CliHarness;

namespace DreamBooth.Tests.Cli;

public class SessionCommandTests
{
    [Fact]
    public void NewShowListAndImagesAdd()
    {
        using var dir = TestPaths.NewTempDir();
        var folder = Path.Combine(dir.Path, "me");
        var r = Run("session", "new", folder, "--model", TinyFolder, "--identifier", "llmcbrrrqqdpj", "--class", "person", "--resolution", "64");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("llmcbrrrqqdpj person", r.Out);
        var s = DreamBoothSession.Load(folder);
        Assert.Equal(64, s.File.Options.Resolution);
        Assert.Equal(Path.GetFullPath(TinyFolder), s.File.BaseModel);
        Assert.Equal("person", s.File.Concepts.Single().ClassNoun);

        // creating it again is refused, nothing is overwritten
        var again = Run("session", "new", folder, "--model", TinyFolder, "--identifier", "zzz", "--class", "dog");
        Assert.Equal(1, again.Code);
        Assert.Contains("already exists", again.Err);
        Assert.Equal("llmcbrrrqqdpj", DreamBoothSession.Load(folder).File.Concepts.Single().Identifier);

        // one good photo and one file that is not an image
        var good = ImportTestImages.SavePng(ImportTestImages.Detailed(160, 120, seed: 4), dir.File("photo one.png"));
        var bad = dir.File("broken.jpg");
        File.WriteAllText(bad, "this is not a JPEG");
        r = Run("images", "add", folder, good, bad, "--crop", "center");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("Imported 1 of 2", r.Out);
        Assert.Contains("broken.jpg", r.Out);
        Assert.Contains("Steps:", r.Out); // the steps recommendation
        var imported = s.InstanceImages(s.File.Concepts[0]);
        Assert.Single(imported);
        using (var img = SixLabors.ImageSharp.Image.Load(imported[0])) Assert.Equal((64, 64), (img.Width, img.Height));

        r = Run("session", "show", folder);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("identifier 'llmcbrrrqqdpj', class 'person'", r.Out);
        Assert.Contains("1 instance image(s), 0 class image(s)", r.Out);
        Assert.Contains("resolution 64", r.Out);
        Assert.Contains("step 0 of 1500", r.Out);
        Assert.Contains("Checkpoints (0)", r.Out);

        r = Run("session", "list", dir.Path);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("me", r.Out);
        Assert.Contains("llmcbrrrqqdpj person", r.Out);
    }

    [Fact]
    public void NewTakesTheBaseModelsOwnResolutionUnlessGiven()
    {
        using var dir = TestPaths.NewTempDir();
        var folder = Path.Combine(dir.Path, "tiny");
        var r = Run("session", "new", folder, "--model", TinyFolder, "--identifier", "qwx", "--class", "dog");
        Assert.True(r.Code == 0, r.ToString());
        int own;
        using (var m = DreamBooth.Loading.StableDiffusionModel.FromPretrained(TinyFolder)) own = m.DefaultResolution;
        Assert.NotEqual(512, own); // so the default below is the model's, not SD 1.5's
        Assert.True(r.Out.Contains($"resolution {own} (the base model's own"), r.ToString());
        Assert.Equal(own, DreamBoothSession.Load(folder).File.Options.Resolution);
        Assert.Equal(own, DreamBooth.Loading.ModelSource.NativeResolution(TinyFolder));
        Assert.Equal(64, DreamBooth.Loading.ModelSource.NativeResolution(DreamBooth.Tests.TinyWorld.QuickstartTests.TinyModel));

        // a single file's configs are unknown until it is loaded: no guess from the file
        var file = dir.File("model.safetensors");
        File.WriteAllBytes(file, [0]);
        Assert.Null(DreamBooth.Loading.ModelSource.NativeResolution(file));
    }

    [Fact]
    public void ImagesAddWithOnlyBadFilesFails()
    {
        using var dir = TestPaths.NewTempDir();
        var folder = Path.Combine(dir.Path, "s");
        Assert.Equal(0, Run("session", "new", folder, "--model", TinyFolder, "--identifier", "qwx", "--class", "dog", "--resolution", "64").Code);
        var r = Run("images", "add", folder, dir.File("missing.png"));
        Assert.Equal(1, r.Code);
        Assert.Contains("Imported 0 of 1", r.Out);
        var bad = Run("images", "add", folder, dir.File("missing.png"), "--crop", "diagonal");
        Assert.Equal(1, bad.Code);
        Assert.Contains("--crop 'diagonal': use center or smart", bad.Err);
    }

    [Fact]
    public void ShowOfAFolderThatIsNotASessionSaysSo()
    {
        using var dir = TestPaths.NewTempDir();
        var r = Run("session", "show", dir.Path);
        Assert.Equal(1, r.Code);
        Assert.Contains("not a DreamBooth session", r.Err);
        var m = Run("session", "new", dir.File("x"), "--model", "./nowhere", "--identifier", "a", "--class", "b");
        Assert.Equal(1, m.Code);
        Assert.Contains("nowhere", m.Err);
    }

    [Fact]
    public void IdentifierReportsPiecesVerdictAndAlternatives()
    {
        var r = Run("identifier", "llmcbrrrqqdpj", "--model", TinyFolder);
        Assert.True(r.Code == 0, r.ToString());
        Assert.StartsWith("'llmcbrrrqqdpj': ", r.Out);
        Assert.Contains("Rare alternatives: ", r.Out);
        Assert.Contains(" id ", r.Out);

        var sks = Run("identifier", "sks", "--model", Path.Combine(TinyFolder, "tokenizer"), "--alternatives", "2");
        Assert.True(sks.Code == 0, sks.ToString());
        Assert.StartsWith("'sks': BAD", sks.Out);
        Assert.Contains("rifle", sks.Out);
    }

    [Fact]
    public void PretrainRefusesNormGroupsThatDoNotDivideTheWidthsNamingBothOptions()
    {
        using var dir = TestPaths.NewTempDir();
        var r = Run("tinyworld", "pretrain", "--out", Path.Combine(dir.Path, "m"), "--tokenizer", Path.Combine(TinyFolder, "tokenizer"), "--unet-channels", "64,144,144");
        Assert.Equal(1, r.Code);
        Assert.Contains("(--unet-norm-groups) must divide every UnetChannels (--unet-channels) width, 64,144,144: pick a common divisor (16 for 64,144,144)", r.Err);
        Assert.Contains("(got 32)", r.Err);
        Assert.DoesNotContain("(Parameter", r.Err);
        Assert.DoesNotContain("Actual value", r.Err);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "m")));
    }

    [Fact]
    public void TrainSavesLossOptionsAndRefusesABadTimestepBias()
    {
        using var dir = TestPaths.NewTempDir();
        var folder = Path.Combine(dir.Path, "s");
        Assert.Equal(0, Run("session", "new", folder, "--model", TinyFolder, "--identifier", "zwx", "--class", "diamond", "--resolution", "64").Code);
        var photo = ImportTestImages.SavePng(ImportTestImages.Detailed(64, 64, seed: 2), dir.File("p.png"));
        Assert.Equal(0, Run("images", "add", folder, photo).Code);
        var before = File.ReadAllText(DreamBoothSession.Load(folder).SessionFilePath);

        var bad = Run("train", folder, "--timestep-bias", "sooner:2", "--quiet");
        Assert.Equal(1, bad.Code);
        Assert.Contains("--timestep-bias: timestep bias 'sooner:2': unknown strategy 'sooner'", bad.Err);
        Assert.Contains("earlier:2:0.25", bad.Err);
        Assert.Equal(before, File.ReadAllText(DreamBoothSession.Load(folder).SessionFilePath)); // nothing saved

        var badGamma = Run("train", folder, "--min-snr-gamma", "-1", "--quiet");
        Assert.Equal(1, badGamma.Code);
        Assert.Contains("MinSnrGamma", badGamma.Err);

        var badBatch = Run("train", folder, "--batch-size", "0", "--quiet");
        Assert.Equal(1, badBatch.Code);
        Assert.Contains("BatchSize: must be ≥ 1, got 0", badBatch.Err);
        Assert.Equal(before, File.ReadAllText(DreamBoothSession.Load(folder).SessionFilePath));

        var badBlocks = Run("train", folder, "--unet-block-lr", "0,1", "--quiet");
        Assert.Equal(1, badBlocks.Code);
        Assert.Contains("--unet-block-lr: UnetBlockLearningRates: expected three numbers \"down,mid,up\"", badBlocks.Err);
        Assert.DoesNotContain("(Parameter", badBlocks.Err);
        Assert.Equal(before, File.ReadAllText(DreamBoothSession.Load(folder).SessionFilePath));

        var badTe = Run("train", folder, "--text-encoder-training", "embeddings", "--quiet");
        Assert.Equal(1, badTe.Code);
        Assert.Contains("--text-encoder-training: 'embeddings' is not a choice; use full (every weight) or identifier", badTe.Err);
        Assert.Equal(before, File.ReadAllText(DreamBoothSession.Load(folder).SessionFilePath));
        var teWithLora = Run("train", folder, "--text-encoder-training", "identifier", "--lora-rank", "4", "--quiet");
        Assert.Equal(1, teWithLora.Code);
        Assert.Contains("IdentifierEmbeddings applies to full fine-tuning", teWithLora.Err);
        Assert.Contains("--text-encoder-training", teWithLora.Err);

        var ok = Run("train", folder, "--steps", "0", "--prior-preservation", "false", "--timestep-bias", "later:3:0.3", "--batch-size", "2", "--gradient-accumulation", "3",
            "--min-snr-gamma", "5", "--offset-noise", "0.05", "--class-prompts-from-captions", "true", "--unet-block-lr", "0,0.5,1", "--text-encoder-training", "identifier", "--device", "cpu", "--quiet");
        Assert.True(ok.Code == 0, ok.ToString());
        var o = DreamBoothSession.Load(folder).File.Options;
        Assert.Equal(new TimestepBias { Strategy = TimestepBiasStrategy.Later, Multiplier = 3, Portion = 0.3 }, o.TimestepBias);
        Assert.Equal(5.0, o.MinSnrGamma);
        Assert.Equal(0.05, o.OffsetNoise);
        Assert.Equal(2, o.BatchSize);
        Assert.Equal(3, o.GradientAccumulationSteps);
        Assert.True(o.ClassPromptsFromCaptions);
        Assert.Equal(new UnetBlockLearningRates { Down = 0, Mid = 0.5, Up = 1 }, o.UnetBlockLearningRates);
        Assert.Equal(TextEncoderTraining.IdentifierEmbeddings, o.TextEncoderTraining);

        // 0 turns min-SNR off again; options not given are kept
        Assert.Equal(0, Run("train", folder, "--min-snr-gamma", "0", "--device", "cpu", "--quiet").Code);
        o = DreamBoothSession.Load(folder).File.Options;
        Assert.Null(o.MinSnrGamma);
        Assert.Equal(TimestepBiasStrategy.Later, o.TimestepBias.Strategy);
    }
}
