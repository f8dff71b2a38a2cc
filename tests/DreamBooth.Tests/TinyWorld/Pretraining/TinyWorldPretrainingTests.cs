using System.Text.Json;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.TinyWorld;
using DreamBooth.TinyWorld.Pretraining;
using DreamBooth.Training;
using TorchSharp;

namespace DreamBooth.Tests.TinyWorld.Pretraining;

[Collection(PretrainingCollection.Name)]
public class TinyWorldPretrainingTests
{
    static PretrainOptions Tiny => PretrainOptions.Tiny with { TokenizerFolder = TestPaths.ParityPath("tokenizer"), Threads = 0 };

    /// <summary>Options that keep the UNet and text encoder of <paramref name="model"/> and load (grow, continue) its VAE.</summary>
    static PretrainOptions ContinuingTheVaeOf(string model) => Tiny with { VaeFrom = model, InitFrom = model, TextPretrainSteps = 0, UnetSteps = 0 };

    [Fact]
    public void TinyRecipeWritesALoadableDiffusersFolderThatGenerates()
    {
        using var dir = TestPaths.NewTempDir("pretrain");
        var outFolder = Path.Combine(dir.Path, "tiny-sd");
        var reports = new List<PretrainProgress>();
        var result = TinyWorldPretraining.Run(Tiny, outFolder, new InlineProgress<PretrainProgress>(reports.Add));

        Assert.True(double.IsFinite(result.FinalVaeLoss) && double.IsFinite(result.FinalUnetLoss));
        Assert.True(result.ScalingFactor > 0 && double.IsFinite(result.ScalingFactor));
        Assert.Contains(reports, r => r.Stage == PretrainStage.Vae && r.Step == Tiny.VaeSteps);
        Assert.Contains(reports, r => r.Stage == PretrainStage.Unet && r.Step == Tiny.UnetSteps);

        // the exact diffusers layout, fp16 weights
        foreach (var f in new[] { "model_index.json", "recipe.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                     "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
                     "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json",
                     "tokenizer/LICENSE-NOTE.md", "scheduler/scheduler_config.json" })
            Assert.True(File.Exists(Path.Combine(outFolder, f)), $"{f} is missing");
        foreach (var w in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
        {
            var header = Safetensors.ReadHeader(Path.Combine(outFolder, w));
            Assert.All(header.Entries.Where(e => e.DType != "I64"), e => Assert.Equal("F16", e.DType));
        }
        Assert.DoesNotContain(Directory.GetDirectories(dir.Path), d => Path.GetFileName(d).StartsWith('.'));

        using var recipe = JsonDocument.Parse(File.ReadAllText(Path.Combine(outFolder, "recipe.json")));
        Assert.Equal(Tiny.Seed, recipe.RootElement.GetProperty("options").GetProperty("Seed").GetInt32());
        Assert.Equal(Tiny.UnetSteps, recipe.RootElement.GetProperty("unet_steps_done").GetInt32());
        Assert.True(recipe.RootElement.GetProperty("total_seconds").GetDouble() >= 0);

        using var model = StableDiffusionModel.FromPretrained(outFolder);
        Assert.Equal(64, model.DefaultResolution);
        Assert.Equal(4, model.VaeScaleFactor);
        Assert.Equal(result.ScalingFactor, model.Vae.Config.ScalingFactor, 4);
        Assert.Equal(SchedulerConfig.StableDiffusion.BetaEnd, model.Scheduler.BetaEnd);
        Assert.Equal(BetaSchedule.ScaledLinear, model.Scheduler.BetaSchedule);
        var pipeline = new StableDiffusionPipeline(model);
        using var gen = pipeline.Generate(new GenerationRequest { Prompt = "a red circle on a blue background", Steps = 2, Seed = 1 });
        Assert.Equal(new long[] { 1, 3, 64, 64 }, gen.Images.shape);
        Assert.True(gen.Images.isfinite().all().item<bool>());
    }

    [Fact]
    public void SameSeedGivesTheSameWeightsAndRewritingReplacesTheFolder()
    {
        using var dir = TestPaths.NewTempDir("pretrain");
        var a = Path.Combine(dir.Path, "a");
        var b = Path.Combine(dir.Path, "b");
        var o = Tiny with { UnetSteps = 2, VaeSteps = 1 };
        TinyWorldPretraining.Run(o, a);
        TinyWorldPretraining.Run(o, b);
        foreach (var w in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
            Assert.True(File.ReadAllBytes(Path.Combine(a, w)).SequenceEqual(File.ReadAllBytes(Path.Combine(b, w))), $"{w} differs between two runs with the same seed");

        // a different seed gives different weights; writing over an existing folder replaces it whole
        File.WriteAllText(Path.Combine(b, "stale.txt"), "old");
        TinyWorldPretraining.Run(o with { Seed = o.Seed + 1 }, b);
        Assert.False(File.Exists(Path.Combine(b, "stale.txt")));
        Assert.False(File.ReadAllBytes(Path.Combine(a, "unet/diffusion_pytorch_model.safetensors"))
            .SequenceEqual(File.ReadAllBytes(Path.Combine(b, "unet/diffusion_pytorch_model.safetensors"))));
        Assert.Equal(2, Directory.GetDirectories(dir.Path).Length);
    }

    [Fact]
    public void CaptionLabelsNameWhatACaptionSaysAndMarkTheRestNotSaid()
    {
        using var labels = TinyWorldPretraining.CaptionLabels(["a small red circle in the top left on a blue background", "a diamond", ""]);
        var l = labels.data<long>().ToArray();
        // order: shape, colour, size, position, background, count; "not said" = the attribute's class count
        Assert.Equal(new long[]
        {
            (long)DreamBooth.TinyWorld.ShapeKind.Circle, (long)DreamBooth.TinyWorld.NamedColor.Red, (long)DreamBooth.TinyWorld.ObjectSize.Small,
            (long)DreamBooth.TinyWorld.GridPosition.TopLeft, (long)DreamBooth.TinyWorld.NamedColor.Blue, (long)DreamBooth.TinyWorld.ObjectCount.One,
        }, l[..6]);
        Assert.Equal(new long[] { (long)DreamBooth.TinyWorld.ShapeKind.Diamond, 8, 2, 9, 8, (long)DreamBooth.TinyWorld.ObjectCount.One }, l[6..12]);
        Assert.Equal(new long[] { 5, 8, 2, 9, 8, 2 }, l[12..]);
    }

    [Fact]
    public void TextPretrainingLearnsToNameTheCaptionsAttributes()
    {
        using var dir = TestPaths.NewTempDir("pretrain");
        // 6 attributes with 3–10 classes each: guessing uniformly costs Σ ln(classes) ≈ 10.8 nats
        var result = TinyWorldPretraining.Run(Tiny with { TextPretrainSteps = 200, TextPretrainBatchSize = 16, TextPretrainLearningRate = 3e-3 },
            Path.Combine(dir.Path, "m"));
        Assert.True(result.FinalTextLoss < 5.0, $"text-pretraining loss {result.FinalTextLoss:F2} after 200 steps (uniform guessing: 10.8)");
    }

    [Fact]
    public void SnapshotsAreWrittenDuringTraining()
    {
        using var dir = TestPaths.NewTempDir("pretrain");
        var outFolder = Path.Combine(dir.Path, "m");
        var seen = new List<int>();
        var o = Tiny with { UnetSteps = 4, SnapshotEvery = 2 };
        TinyWorldPretraining.Run(o, outFolder, new InlineProgress<PretrainProgress>(p =>
        {
            // when step 3 starts, the step-2 snapshot must already be on disk
            if (p.Stage == PretrainStage.Unet && p.Step == 3 && File.Exists(Path.Combine(outFolder, "recipe.json")))
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outFolder, "recipe.json")));
                seen.Add(doc.RootElement.GetProperty("unet_steps_done").GetInt32());
            }
        }));
        Assert.Equal([2], seen);
    }

    [Fact]
    public void CancellationStopsTheRunWritesNoModelAndKeepsTheUnetStagesState()
    {
        using var dir = TestPaths.NewTempDir("pretrain");
        var outFolder = Path.Combine(dir.Path, "m");
        using var cts = new CancellationTokenSource();
        var progress = new InlineProgress<PretrainProgress>(p => { if (p.Stage == PretrainStage.Unet) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => TinyWorldPretraining.Run(Tiny with { UnetSteps = 50 }, outFolder, progress, cts.Token));
        Assert.False(Directory.Exists(outFolder));
        Assert.Equal([Path.GetFileName(PretrainState.PathFor(outFolder))], Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AResumedRunGivesTheWeightsOfAnUninterruptedOne()
    {
        using var dir = TestPaths.NewTempDir("pretrain");
        var o = Tiny with { UnetSteps = 6, SnapshotEvery = 2 };
        var a = Path.Combine(dir.Path, "a");
        TinyWorldPretraining.Run(o, a);
        Assert.False(File.Exists(PretrainState.PathFor(a)), "a completed run deletes its state");

        // stopped after 3 UNet steps (Ctrl+C), then resumed from the state file
        var b = Path.Combine(dir.Path, "b");
        using var cts = new CancellationTokenSource();
        var stop = new InlineProgress<PretrainProgress>(p => { if (p.Stage == PretrainStage.Unet && p.Step == 3) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => TinyWorldPretraining.Run(o, b, stop, cts.Token));
        Assert.True(File.Exists(PretrainState.PathFor(b)));

        // other options are refused, naming the file and the fix; the state is kept
        var e = Assert.Throws<InvalidOperationException>(() => TinyWorldPretraining.Run(o with { UnetLearningRate = 1e-4 }, b, resume: true));
        Assert.Contains(PretrainState.PathFor(b), e.Message);
        Assert.Contains("delete the file to start over", e.Message);
        Assert.Contains("UnetLearningRate: 0.0008 → 0.0001", e.Message);

        var steps = new List<int>();
        var result = TinyWorldPretraining.Run(o, b, new InlineProgress<PretrainProgress>(p => { if (p.Stage == PretrainStage.Unet) steps.Add(p.Step); }), resume: true);
        Assert.Equal([4, 5, 6], steps);
        Assert.Equal(6, result.UnetStepsDone);
        Assert.False(File.Exists(PretrainState.PathFor(b)));
        foreach (var w in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
            Assert.True(File.ReadAllBytes(Path.Combine(a, w)).SequenceEqual(File.ReadAllBytes(Path.Combine(b, w))), $"{w} differs between the uninterrupted and the resumed run");
    }

    [Fact]
    public void ZeroTerminalSnrRecipeWritesAVPredictionDdimConfigAndContinuesALoadedVae()
    {
        using var dir = TestPaths.NewTempDir("pretrain-zsnr");
        var first = Path.Combine(dir.Path, "first");
        TinyWorldPretraining.Run(Tiny, first);
        var outFolder = Path.Combine(dir.Path, "zsnr");
        var o = Tiny with
        {
            VaeFrom = first, VaeContinueSteps = 2, Prediction = PredictionType.VPrediction, ZeroTerminalSnr = true, UnetObjectWeight = 4,
        };
        var reports = new List<PretrainProgress>();
        var result = TinyWorldPretraining.Run(o, outFolder, new InlineProgress<PretrainProgress>(reports.Add));
        Assert.Contains(reports, r => r.Stage == PretrainStage.Vae && r.Step == 2 && r.Total == 2);
        Assert.True(double.IsFinite(result.FinalUnetLoss));
        // the continued VAE differs from the loaded one
        using (var a = StableDiffusionModel.FromPretrained(first))
        using (var b = StableDiffusionModel.FromPretrained(outFolder))
        {
            var wa = a.Vae.state_dict()["decoder.conv_out.weight"];
            var wb = b.Vae.state_dict()["decoder.conv_out.weight"];
            Assert.False(wa.allclose(wb));
            // the scheduler diffusers documents for zero-SNR models: DDIM, v-prediction, rescaled betas, trailing steps
            Assert.Equal("DDIMScheduler", b.Scheduler.ClassName);
            Assert.Equal(PredictionType.VPrediction, b.Scheduler.PredictionType);
            Assert.True(b.Scheduler.RescaleBetasZeroSnr);
            Assert.Equal(TimestepSpacing.Trailing, b.Scheduler.TimestepSpacing);
            var pipeline = new StableDiffusionPipeline(b);
            foreach (var sampler in new[] { Sampler.DpmPP2M, Sampler.EulerAncestral, Sampler.Ddim, Sampler.UniPC, Sampler.Pndm, Sampler.DpmPPSdeKarras })
            {
                using var gen = pipeline.Generate(new GenerationRequest { Prompt = "a red circle on a blue background", Steps = 3, Seed = 1, Sampler = sampler });
                Assert.True(gen.Images.isfinite().all().item<bool>(), $"{sampler} gave non-finite pixels");
            }
        }
        // continuing that model: same UNet weights at the start, so with a zero learning-rate step nothing changes
        var cont = Path.Combine(dir.Path, "continued");
        TinyWorldPretraining.Run(ContinuingTheVaeOf(outFolder) with { UnetSteps = 1, UnetLearningRate = 1e-12, TextLearningRate = 1e-12, EmaDecay = 0 }, cont);
        using (var a = StableDiffusionModel.FromPretrained(outFolder))
        using (var b = StableDiffusionModel.FromPretrained(cont))
        {
            var wa = a.Unet.state_dict()["conv_in.weight"];
            var wb = b.Unet.state_dict()["conv_in.weight"];
            Assert.True((wa - wb).abs().max().item<float>() < 1e-3f);
        }
        Assert.ThrowsAny<ArgumentException>((Tiny with { InitFrom = outFolder }).Validate);

        // the ε recipe keeps SD 1.x's scheduler file
        using var eps = JsonDocument.Parse(TinyModelExport.SchedulerJson(Tiny with { Prediction = PredictionType.Epsilon, ZeroTerminalSnr = false }));
        Assert.Equal("PNDMScheduler", eps.RootElement.GetProperty("_class_name").GetString());
        Assert.Equal("leading", eps.RootElement.GetProperty("timestep_spacing").GetString());
        Assert.False(eps.RootElement.TryGetProperty("rescale_betas_zero_snr", out _));
    }

    [Fact]
    public void AnchoredVaeContinuationKeepsTheLoadedUnetAndItsLatentsWhileAWarmStartTakesTheNewScale()
    {
        using var dir = TestPaths.NewTempDir("pretrain-anchor");
        var first = Path.Combine(dir.Path, "first");
        var firstResult = TinyWorldPretraining.Run(Tiny, first);
        var continued = Tiny with { VaeFrom = first, VaeContinueSteps = 15, VaeContinueLearningRate = 3e-3, TextPretrainSteps = 0 };
        var anchored = Path.Combine(dir.Path, "anchored");
        var free = Path.Combine(dir.Path, "free");
        var result = TinyWorldPretraining.Run(continued with { VaeAnchorWeight = 20, InitFrom = first, UnetSteps = 0 }, anchored);
        var freeResult = TinyWorldPretraining.Run(continued, free);

        // the UNet and text encoder are the loaded ones, bit for bit, and so is the latent scale they were trained with
        Assert.Equal(0, result.UnetStepsDone);
        Assert.Equal(firstResult.ScalingFactor, result.ScalingFactor, 6);
        Assert.Equal(firstResult.FinalUnetLoss, result.FinalUnetLoss, 4);
        using var a = StableDiffusionModel.FromPretrained(first);
        using var b = StableDiffusionModel.FromPretrained(anchored);
        using var c = StableDiffusionModel.FromPretrained(free);
        foreach (var (name, t) in a.Unet.state_dict()) Assert.True(t.eq(b.Unet.state_dict()[name]).all().item<bool>(), $"unet {name} changed");
        foreach (var (name, t) in a.TextEncoder.state_dict()) Assert.True(t.eq(b.TextEncoder.state_dict()[name]).all().item<bool>(), $"text encoder {name} changed");
        Assert.False(a.Vae.state_dict()["decoder.conv_out.weight"].allclose(b.Vae.state_dict()["decoder.conv_out.weight"]));

        // warm start: the first UNet adapted to the freely continued VAE's latents takes their 1/std as scaling_factor
        // (not the first model's), and keeping that UNet unchanged on latents it never saw is refused
        var warm = Path.Combine(dir.Path, "warm");
        var warmOptions = Tiny with { VaeFrom = free, InitFrom = first, TextPretrainSteps = 0, UnetSteps = 2 };
        var warmResult = TinyWorldPretraining.Run(warmOptions, warm);
        // (the free model's own factor came from its float32 VAE, the warm start's from that VAE saved as fp16)
        string scales = $"warm {warmResult.ScalingFactor}, free {freeResult.ScalingFactor}, first {firstResult.ScalingFactor}";
        Assert.True(Math.Abs(warmResult.ScalingFactor / freeResult.ScalingFactor - 1) < 1e-3, scales);
        Assert.True(Math.Abs(warmResult.ScalingFactor / firstResult.ScalingFactor - 1) > 1e-2, scales);
        Assert.Contains("scaling_factor = 1/std", File.ReadAllText(Path.Combine(warm, "README.md")));
        var e = Assert.ThrowsAny<ArgumentException>((warmOptions with { UnetSteps = 0 }).Validate);
        Assert.Contains("--unet-steps", e.Message);

        // the anchor keeps the scenes' latents near the loaded VAE's; the free continuation moves them further
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var data = new global::DreamBooth.TinyWorld.TinyWorldDataset(new() { Seed = 5, Count = 8 });
        var x = torch.cat(data.Select(s => { using var im = s.Render(); return global::DreamBooth.Imaging.ImageTensor.ToTensor(im).unsqueeze(0); }).ToList(), 0);
        var z0 = a.Vae.Encode(x).Mean;
        double anchoredDrift = (b.Vae.Encode(x).Mean - z0).pow(2).mean().item<float>();
        double freeDrift = (c.Vae.Encode(x).Mean - z0).pow(2).mean().item<float>();
        Assert.True(anchoredDrift < 0.5 * freeDrift, $"anchored latent drift {anchoredDrift:E2} vs free {freeDrift:E2}");
    }

    [Fact]
    public void UnknownLossesAreRecordedAsNullAndNotAvailable()
    {
        // a VAE reused from a folder without recipe.json, or a stage whose every tail step was skipped as non-finite,
        // has no final loss: recipe.json must still be valid JSON (it has no NaN) and the card must say so
        var r = new PretrainResult
        {
            Folder = "x", FinalVaeLoss = double.NaN, FinalUnetLoss = double.NaN, FinalTextLoss = double.PositiveInfinity, ScalingFactor = 0.5,
            VaeSeconds = 1, UnetSeconds = 2, TotalSeconds = 3, UnetStepsDone = 3, Parameters = new Dictionary<string, long> { ["unet"] = 1, ["vae"] = 2, ["text_encoder"] = 3 },
        };
        using var doc = JsonDocument.Parse(TinyModelExport.RecipeJson(Tiny, r));
        foreach (var key in new[] { "final_vae_loss", "final_unet_loss", "final_text_loss" })
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty(key).ValueKind);
        var card = TinyModelExport.Readme(Tiny, r);
        Assert.Contains("final VAE loss n/a", card);
        Assert.Contains("final UNet loss n/a", card);
        Assert.DoesNotContain("NaN", card);
        using var known = JsonDocument.Parse(TinyModelExport.RecipeJson(Tiny, r with { FinalVaeLoss = 0.123456 }));
        Assert.Equal(0.12346, known.RootElement.GetProperty("final_vae_loss").GetDouble(), 6);
    }

    [Fact]
    public void PasteLossIsTheReconstructionWhenNothingIsPastedAndGrowsWhenCodesDependOnTheirSurroundings()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        using var vae = new global::DreamBooth.Models.Vae.AutoencoderKL(TinyModelConfigs.Vae(Tiny));
        var o = PatternedObjects.Sample(11, 0);
        using var a = PatternedObjects.Render(o);
        using var b = PatternedObjects.Render(PatternedObjects.OnOtherBackground(o, 11, 0));
        var xa = global::DreamBooth.Imaging.ImageTensor.ToTensor(a).unsqueeze(0);
        var xb = global::DreamBooth.Imaging.ImageTensor.ToTensor(b).unsqueeze(0);
        using var noGrad = torch.no_grad();
        // pasting an image into itself mixes a latent with itself: the term is the plain weighted reconstruction
        var za = vae.Encode(xa).Mean;
        var self = TinyWorldPretraining.PasteLoss(vae, xa, za, xa, 9).item<float>();
        var diff = vae.Decode(za) - xa;
        Assert.Equal(((diff.abs() + diff.pow(2)) * 10).mean().item<float>() / 10, self, 4);
        // into the other background: the object's code is taken from xa, the background's from xb, the target is xb;
        // a decoder that ignores the pasted code (here: the latent of xb itself) would score exactly xb's reconstruction
        var pasted = TinyWorldPretraining.PasteLoss(vae, xa, za, xb, 9).item<float>();
        Assert.True(float.IsFinite(pasted) && pasted > 0);
        var zb = vae.Encode(xb).Mean;
        var ownB = TinyWorldPretraining.PasteLoss(vae, xb, zb, xb, 9).item<float>();
        Assert.NotEqual(ownB, pasted, 5);
    }

    [Fact]
    public void VaeContinuationWithThePasteTermRunsAndRecordsIt()
    {
        using var dir = TestPaths.NewTempDir("pretrain-paste");
        var first = Path.Combine(dir.Path, "first");
        TinyWorldPretraining.Run(Tiny, first);
        var pasted = Path.Combine(dir.Path, "pasted");
        var o = ContinuingTheVaeOf(first) with { VaeContinueSteps = 4, VaeAnchorWeight = 1, VaePasteWeight = 1 };
        var result = TinyWorldPretraining.Run(o, pasted);
        Assert.True(double.IsFinite(result.FinalVaeLoss));
        using (var a = StableDiffusionModel.FromPretrained(first))
        using (var b = StableDiffusionModel.FromPretrained(pasted))
            Assert.False(a.Vae.state_dict()["encoder.conv_in.weight"].allclose(b.Vae.state_dict()["encoder.conv_in.weight"]));
        // the recipe names the term and the command that repeats it
        var card = File.ReadAllText(Path.Combine(pasted, "README.md"));
        Assert.Contains("latent-paste term", card);
        Assert.Contains("--vae-paste-weight 1", card);
    }

    [Fact]
    public void TheColourSeparationTermPushesCloseColoursApartAndIsRecorded()
    {
        // the term alone, on a fresh tiny VAE: it is zero when every pair is far enough, and a few steps of it
        // raise the closest pair's distance (in margin units)
        TorchSharp.torch.manual_seed(7);
        using var vae = new DreamBooth.Models.Vae.AutoencoderKL(TinyModelConfigs.Vae(Tiny));
        using var plain = PaletteLatents.PlainImages(32);
        Assert.Equal(new long[] { TinyWorldPalette.All.Count, 3, 32, 32 }, plain.shape);
        using var margins = TinyWorldPretraining.ColourMargins(2.5);
        Assert.Equal(0f, margins[2, 2].item<float>());
        Assert.InRange(margins[(int)NamedColor.Purple, (int)NamedColor.White].item<float>(), 2.4f, 2.6f); // ΔE ≈ 99
        var one = TorchSharp.torch.tensor(1f);
        using (TorchSharp.torch.no_grad())
            Assert.Equal(0f, TinyWorldPretraining.ColourSeparationLoss(vae, plain, TorchSharp.torch.zeros_like(margins), one).item<float>());
        double Shortest()
        {
            using var noGrad = TorchSharp.torch.no_grad();
            var z = vae.Encode(plain).Mean.mean([2, 3]);
            var d = (z.unsqueeze(1) - z.unsqueeze(0)).pow(2).sum(2).sqrt() + TorchSharp.torch.eye(z.shape[0]) * 1e6;
            return (d / (margins + TorchSharp.torch.eye(z.shape[0]))).min().item<float>();
        }
        var before = Shortest();
        using var opt = TorchSharp.torch.optim.Adam(vae.parameters(), 1e-2);
        double first = double.NaN, last = double.NaN;
        for (int i = 0; i < 20; i++)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            opt.zero_grad();
            var loss = TinyWorldPretraining.ColourSeparationLoss(vae, plain, margins, one);
            loss.backward();
            opt.step();
            if (i == 0) first = loss.item<float>(); else last = loss.item<float>();
        }
        Assert.True(first > 0, $"a fresh VAE packs some colours closer than the margin (loss {first})");
        Assert.True(last < first / 2, $"separation loss {first} → {last}");
        Assert.True(Shortest() > before, $"closest pair (margin units) {before} → {Shortest()}");

        // it moves the latents, so it is refused with a frozen encoder and with a UNet continued on the old latents
        var model = Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd");
        var frozen = Tiny with { VaeFrom = model, VaeContinueSteps = 5, VaeFreezeEncoder = true, VaeColourSeparation = 1 };
        Assert.Contains("--vae-freeze-encoder", Assert.ThrowsAny<ArgumentException>(frozen.Validate).Message);
        var continued = ContinuingTheVaeOf(model) with { VaeContinueSteps = 5, VaeAnchorWeight = 1, VaeColourSeparation = 1 };
        Assert.Contains("--init-from", Assert.ThrowsAny<ArgumentException>(continued.Validate).Message);

        // a short recipe with it runs and records the term and the command
        using var dir = TestPaths.NewTempDir("pretrain-separate");
        var folder = Path.Combine(dir.Path, "separated");
        var result = TinyWorldPretraining.Run(Tiny with { VaeColourSeparation = 1, VaeColourMargin = 3 }, folder);
        Assert.True(double.IsFinite(result.FinalVaeLoss));
        var card = File.ReadAllText(Path.Combine(folder, "README.md"));
        Assert.Contains("colour-separation term", card);
        Assert.Contains("--vae-colour-separation 1 --vae-colour-margin 3", card);
    }

    [Fact]
    public void AFrozenEncoderKeepsEveryLatentAndTrainsTheDecoder()
    {
        using var dir = TestPaths.NewTempDir("pretrain-freeze");
        var first = Path.Combine(dir.Path, "first");
        TinyWorldPretraining.Run(Tiny, first);
        var tuned = Path.Combine(dir.Path, "tuned");
        // no anchor needed with --init-from: the encoder cannot move
        var o = ContinuingTheVaeOf(first) with { VaeContinueSteps = 4, VaeFreezeEncoder = true, VaePasteWeight = 1 };
        TinyWorldPretraining.Run(o, tuned);
        using (var a = StableDiffusionModel.FromPretrained(first))
        using (var b = StableDiffusionModel.FromPretrained(tuned))
        {
            var sa = a.Vae.state_dict();
            var sb = b.Vae.state_dict();
            foreach (var key in sa.Keys.Where(k => k.StartsWith("encoder.", StringComparison.Ordinal) || k.StartsWith("quant_conv.", StringComparison.Ordinal)))
                Assert.True(sa[key].allclose(sb[key], 0, 0), $"{key} changed although the encoder was frozen");
            Assert.False(sa["decoder.conv_out.weight"].allclose(sb["decoder.conv_out.weight"], 0, 0));
            Assert.False(sa["post_quant_conv.weight"].allclose(sb["post_quant_conv.weight"], 0, 0));
        }
        var card = File.ReadAllText(Path.Combine(tuned, "README.md"));
        Assert.Contains("--vae-freeze-encoder", card);
        Assert.Contains("decoder and post_quant_conv only", card);
    }

    [Fact]
    public void AGrownVaeStartsAsTheLoadedOneAndThenTrainsItsNewBlocks()
    {
        using var dir = TestPaths.NewTempDir("pretrain-grow");
        var first = Path.Combine(dir.Path, "first");
        TinyWorldPretraining.Run(Tiny, first);
        var grown = Path.Combine(dir.Path, "grown");
        TinyWorldPretraining.Run(ContinuingTheVaeOf(first) with { VaeLayersPerBlock = 2 }, grown);
        var tuned = Path.Combine(dir.Path, "tuned");
        TinyWorldPretraining.Run(ContinuingTheVaeOf(first) with { VaeLayersPerBlock = 2, VaeContinueSteps = 3, VaeAnchorWeight = 1 }, tuned);
        using var a = StableDiffusionModel.FromPretrained(first);
        using var b = StableDiffusionModel.FromPretrained(grown);
        using var c = StableDiffusionModel.FromPretrained(tuned);
        Assert.Equal(1, a.Vae.Config.LayersPerBlock);
        Assert.Equal(2, b.Vae.Config.LayersPerBlock);
        Assert.True(b.Vae.parameters().Sum(p => p.numel()) > a.Vae.parameters().Sum(p => p.numel()));
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        var x = TorchSharp.torch.rand([2, 3, 64, 64], generator: new TorchSharp.torch.Generator(5)) * 2 - 1;
        // the added blocks are the identity: same latents, same image (up to fp16 storage of both)
        var za = a.Vae.Encode(x).Mean;
        var zb = b.Vae.Encode(x).Mean;
        Assert.True(za.allclose(zb, 1e-4, 1e-4));
        Assert.True(a.Vae.Decode(za).allclose(b.Vae.Decode(zb), 1e-4, 1e-4));
        // continued training moves the new blocks' zeroed convolutions
        Assert.True(b.Vae.state_dict()["decoder.up_blocks.0.resnets.2.conv2.weight"].abs().max().item<float>() == 0);
        Assert.True(c.Vae.state_dict()["decoder.up_blocks.0.resnets.2.conv2.weight"].abs().max().item<float>() > 0);
        Assert.Contains("--vae-layers-per-block 2", File.ReadAllText(Path.Combine(tuned, "README.md")));
        // a loaded VAE is never shrunk
        var e = Assert.ThrowsAny<ArgumentException>(() => TinyWorldPretraining.Run(ContinuingTheVaeOf(tuned) with { VaeLayersPerBlock = 1 }, Path.Combine(dir.Path, "shrunk")));
        Assert.Contains("VaeLayersPerBlock", e.Message);
    }

    [Theory]
    [InlineData("VaeLayersPerBlock")]
    [InlineData("VaeFreezeEncoder")]
    [InlineData("VaeNormGroups")]
    [InlineData("UnetHeads")]
    [InlineData("CaptionDropout")]
    [InlineData("TokenizerFolder")]
    [InlineData("ZeroTerminalSnr")]
    [InlineData("HighNoiseWeightCap")]
    [InlineData("VaeContinueSteps")]
    [InlineData("UnetObjectWeight")]
    [InlineData("VaePatternFraction")]
    [InlineData("VaeAnchorWeight")]
    [InlineData("VaePasteWeight")]
    [InlineData("VaeColourSeparation")]
    [InlineData("VaeColourMargin")]
    [InlineData("UnetPatternFraction")]
    [InlineData("UnetPatternColourWords")]
    [InlineData("UnetSteps")]
    [InlineData("InitFrom")]
    public void BadOptionsAreRefusedByName(string option)
    {
        var o = option switch
        {
            // only a loaded, continued VAE has an encoder to keep
            "VaeFreezeEncoder" => Tiny with { VaeFreezeEncoder = true },
            "VaeLayersPerBlock" => Tiny with { VaeLayersPerBlock = 0 },
            "VaeNormGroups" => Tiny with { VaeNormGroups = 3 },
            "UnetHeads" => Tiny with { UnetHeads = 5 },
            "CaptionDropout" => Tiny with { CaptionDropout = 1.5 },
            "ZeroTerminalSnr" => Tiny with { ZeroTerminalSnr = true, Prediction = PredictionType.Epsilon },
            "HighNoiseWeightCap" => Tiny with { Prediction = PredictionType.VPrediction, HighNoiseWeightCap = 100 },
            "VaeContinueSteps" => Tiny with { VaeContinueSteps = 10 },
            "UnetObjectWeight" => Tiny with { UnetObjectWeight = -1 },
            "VaePatternFraction" => Tiny with { VaePatternFraction = 1.5 },
            "UnetPatternFraction" => Tiny with { UnetPatternFraction = -0.1 },
            // colour words caption the patterned objects, so they need some
            "UnetPatternColourWords" => Tiny with { UnetPatternColourWords = true, UnetPatternFraction = 0 },
            // an anchor needs a continued VAE
            "VaeAnchorWeight" => Tiny with { VaeAnchorWeight = 1 },
            // the paste term pastes patterned objects, so it needs some
            "VaePasteWeight" => Tiny with { VaePasteWeight = 1, VaePatternFraction = 0 },
            "VaeColourSeparation" => Tiny with { VaeColourSeparation = -1 },
            "VaeColourMargin" => Tiny with { VaeColourMargin = 0 },
            // 0 UNet steps only make sense when continuing a model
            "UnetSteps" => Tiny with { UnetSteps = 0 },
            // a continued VAE without an anchor would move the latents under the loaded UNet
            "InitFrom" => Tiny with { InitFrom = Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd"), VaeFrom = Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd"), VaeContinueSteps = 5 },
            _ => Tiny with { TokenizerFolder = Path.Combine(Path.GetTempPath(), "no-such-tokenizer-" + Guid.NewGuid().ToString("N")) },
        };
        var e = Assert.ThrowsAny<ArgumentException>(o.Validate);
        Assert.Contains(option, e.Message);
    }

    [Fact]
    public void DefaultRecipeFitsTheSizeBudget()
    {
        // parameters of the default recipe, built on the meta device: fp16 bytes must stay ≤ 25 MB together
        var o = new PretrainOptions();
        long Count(TorchSharp.torch.nn.Module m) => m.parameters().Sum(p => p.numel());
        using var unet = new global::DreamBooth.Models.Unet.UNet2DConditionModel(TinyModelConfigs.Unet(o), global::DreamBooth.Models.Common.ModelPlacement.Meta);
        using var vae = new global::DreamBooth.Models.Vae.AutoencoderKL(TinyModelConfigs.Vae(o), global::DreamBooth.Models.Common.ModelPlacement.Meta);
        using var te = new global::DreamBooth.Models.Clip.ClipTextModel(TinyModelConfigs.TextEncoder(o), global::DreamBooth.Models.Common.ModelPlacement.Meta);
        long bytes = 2 * (Count(unet) + Count(vae) + Count(te));
        Assert.True(bytes + 1_500_000 <= 25L * 1024 * 1024, $"default recipe needs {bytes / 1e6:F1} MB of fp16 weights (+1.5 MB tokenizer) > 25 MB");
    }
}
