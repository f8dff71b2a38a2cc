using System.Globalization;
using System.Text.Json.Nodes;
using DreamBooth.Loading;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;
using DreamBooth.Sampling;

namespace DreamBooth.Tests.Loading;

public class SingleFileTests
{
    static string Tiny(params string[] parts) => TestPaths.ParityPath(["single-file", "tiny-sd1", .. parts]);

    static string Full(string name) => TestPaths.ParityPath("single-file", "full", name);

    static string Keys(string model, string component, string file) => TestPaths.ParityPath("keys", model, component, file);

    /// <summary>The tiny model's head counts and group size are not Stable Diffusion's, so they are given (as a user would).</summary>
    static readonly SingleFileOptions TinyOptions = new()
    {
        NormNumGroups = 4, AttentionHeadDim = [2], TextEncoderAttentionHeads = 4, ImageSize = 256,
    };

    /// <summary>A key listing (name TAB shape TAB dtype) as a shape-only state dict.</summary>
    internal static Dictionary<string, long[]> ReadListing(string path)
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var f = line.Split('\t');
            d[f[0]] = f[1].Length == 0 ? [] : f[1].Split(',').Select(x => long.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        }
        return d;
    }

    static void AssertSameShapes(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, long[]> actual, string what)
    {
        var missing = expected.Keys.Except(actual.Keys).Take(5).ToList();
        var extra = actual.Keys.Except(expected.Keys).Take(5).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0, $"{what}: missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", extra)}]");
        foreach (var (k, s) in expected)
            Assert.True(s.SequenceEqual(actual[k]), $"{what}: {k} has [{string.Join(",", actual[k])}], expected [{string.Join(",", s)}]");
    }

    static void AssertSameTensors(IReadOnlyDictionary<string, torch.Tensor> expected, IReadOnlyDictionary<string, torch.Tensor> actual, string what)
    {
        Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), actual.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (k, e) in expected)
        {
            var a = actual[k];
            Assert.True(e.dtype == a.dtype && e.shape.SequenceEqual(a.shape), $"{what}: {k} dtype/shape differ");
            Assert.True(e.contiguous().bytes.SequenceEqual(a.contiguous().bytes), $"{what}: {k} values differ");
        }
    }

    /// <summary>Fields of a reference config that must equal the inferred one (bookkeeping and tokenizer ids excluded).</summary>
    static void AssertConfigMatches(JsonObject reference, JsonObject inferred, string what, params string[] alsoSkip)
    {
        string[] skip = ["_diffusers_version", "_name_or_path", "transformers_version", "torch_dtype", "attn_implementation",
                         "bos_token_id", "eos_token_id", "pad_token_id", .. alsoSkip];
        int compared = 0;
        foreach (var (k, v) in reference)
        {
            if (skip.Contains(k) || !inferred.ContainsKey(k)) continue;
            Assert.True(JsonNode.DeepEquals(Normalize(v), Normalize(inferred[k])), $"{what}: '{k}' is {inferred[k]?.ToJsonString()}, expected {v?.ToJsonString()}");
            compared++;
        }
        Assert.True(compared >= 10, $"{what}: only {compared} fields compared");
    }

    static JsonNode? Normalize(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) ? JsonValue.Create(d) : n?.DeepClone() switch
    {
        JsonArray a => new JsonArray(a.Select(x => Normalize(x)).ToArray()),
        var other => other,
    };

    static JsonObject ReadJson(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    [Theory]
    [InlineData("tiny-sd1.safetensors")]
    [InlineData("tiny-sd1.ckpt")]
    public void TinySingleFileConvertsToTheDiffusersTensorsBitExactly(string file)
    {
        using var model = SingleFileCheckpoint.Read(Tiny(file), TinyOptions);
        Assert.Equal(SdVariant.Sd1, model.Variant);
        Assert.Equal(PredictionType.Epsilon, model.PredictionType);
        Assert.Empty(model.IgnoredKeys);
        foreach (var (state, folder, name) in new[]
                 {
                     (model.UnetState, "unet", "diffusion_pytorch_model.safetensors"),
                     (model.VaeState, "vae", "diffusion_pytorch_model.safetensors"),
                     (model.TextEncoderState, "text_encoder", "model.safetensors"),
                 })
        {
            var expected = Safetensors.Load(Tiny("diffusers", folder, name));
            try { AssertSameTensors(expected, state, folder); }
            finally { foreach (var t in expected.Values) t.Dispose(); }
        }
        AssertConfigMatches(ReadJson(Tiny("diffusers", "unet", "config.json")), model.UnetConfig, "unet");
        AssertConfigMatches(ReadJson(Tiny("diffusers", "vae", "config.json")), model.VaeConfig, "vae", "sample_size");
        AssertConfigMatches(ReadJson(Tiny("diffusers", "text_encoder", "config.json")), model.TextEncoderConfig, "text_encoder");
        AssertConfigMatches(ReadJson(Tiny("diffusers", "scheduler", "scheduler_config.json")), model.SchedulerConfig!, "scheduler");
    }

    [Fact]
    public void LegacyVaeAttentionNamesAreNormalized()
    {
        Assert.Equal("encoder.mid_block.attentions.0.to_q.weight", LdmKeyMap.NormalizeLegacyVaeKey("encoder.mid_block.attentions.0.query.weight"));
        Assert.Equal("decoder.mid_block.attentions.0.to_out.0.bias", LdmKeyMap.NormalizeLegacyVaeKey("decoder.mid_block.attentions.0.proj_attn.bias"));
        Assert.Equal("decoder.mid_block.attentions.0.group_norm.bias", LdmKeyMap.NormalizeLegacyVaeKey("decoder.mid_block.attentions.0.group_norm.bias"));
        Assert.Equal("encoder.down_blocks.0.resnets.0.conv1.weight", LdmKeyMap.NormalizeLegacyVaeKey("encoder.down_blocks.0.resnets.0.conv1.weight"));
    }

    [Fact]
    public void TinyRoundTripsBackToTheSingleFileTensors()
    {
        using var dir = TestPaths.NewTempDir();
        var expected = Safetensors.Load(Tiny("tiny-sd1.safetensors"));
        try
        {
            using (var model = SingleFileCheckpoint.Read(Tiny("tiny-sd1.ckpt"), TinyOptions))
            {
                var outPath = dir.File("back.safetensors");
                SingleFileCheckpoint.Write(outPath, model.UnetState, model.VaeState, model.TextEncoderState, model.Variant);
                var back = Safetensors.Load(outPath);
                try { AssertSameTensors(expected, back, "round trip"); }
                finally { foreach (var t in back.Values) t.Dispose(); }
            }

            // Straight from the diffusers folder, as the conversion script does.
            var unet = Safetensors.Load(Tiny("diffusers", "unet", "diffusion_pytorch_model.safetensors"));
            var vae = Safetensors.Load(Tiny("diffusers", "vae", "diffusion_pytorch_model.safetensors"));
            var text = Safetensors.Load(Tiny("diffusers", "text_encoder", "model.safetensors"));
            var p2 = dir.File("script.safetensors");
            SingleFileCheckpoint.Write(p2, unet, vae, text, SdVariant.Sd1);
            var fromScript = Safetensors.Load(p2);
            AssertSameTensors(expected, fromScript, "diffusers -> single file");

            var p3 = dir.File("half.safetensors");
            SingleFileCheckpoint.Write(p3, unet, vae, text, SdVariant.Sd1, torch.ScalarType.Float16);
            Assert.All(Safetensors.ReadHeader(p3).Entries, e => Assert.Equal("F16", e.DType));
            Assert.Throws<ArgumentException>(() => SingleFileCheckpoint.Write(dir.File("x.ckpt"), unet, vae, text, SdVariant.Sd1));
        }
        finally
        {
            foreach (var t in expected.Values) t.Dispose();
        }
    }

    [Fact]
    public void TinyWithoutOptionsFailsClearlyOnWhatShapesCannotTell()
    {
        var e = Assert.Throws<ModelLoadException>(() => SingleFileCheckpoint.Read(Tiny("tiny-sd1.safetensors")));
        Assert.Contains("SingleFileOptions.NormNumGroups", e.Message);
    }

    static Dictionary<string, long[]> ComponentListing(string model, string component) => ReadListing(Keys(model, component, "keys.tsv"));

    [Theory]
    [InlineData("sd15")]
    [InlineData("sd21")]
    public void FullSizeListingsMapCompletelyWithTheRightShapes(string model)
    {
        var shapes = ReadListing(Full($"{model}.keys.tsv"));
        var options = model == "sd21" ? new SingleFileOptions { PredictionType = PredictionType.VPrediction, ImageSize = 768 } : new SingleFileOptions();
        var plan = SingleFileCheckpoint.Plan(shapes, null, options, $"{model}.keys.tsv");
        Assert.Equal(model == "sd15" ? SdVariant.Sd1 : SdVariant.Sd2, plan.Variant);
        Assert.Empty(plan.IgnoredKeys);
        AssertSameShapes(ComponentListing(model, "unet"), plan.TargetShapes[ModelComponent.Unet], "unet");
        AssertSameShapes(ComponentListing(model, "vae"), plan.TargetShapes[ModelComponent.Vae], "vae");
        AssertSameShapes(ComponentListing(model, "text_encoder"), plan.TargetShapes[ModelComponent.TextEncoder], "text_encoder");

        // Verification against the reference mapping (not used by the code).
        var byTarget = plan.Mappings.ToDictionary(m => (m.Component, m.Target));
        int rows = 0;
        foreach (var line in File.ReadLines(Full($"{model}.mapping.tsv")).Where(l => !l.StartsWith('#')))
        {
            var f = line.Split('\t');
            var comp = f[0] switch { "unet" => ModelComponent.Unet, "vae" => ModelComponent.Vae, _ => ModelComponent.TextEncoder };
            var m = byTarget[(comp, f[1])];
            Assert.Equal(f[2], m.Sources.Single());
            var expectedTransform = f[3] == "copy" ? TensorTransform.Copy
                : f[3].StartsWith("reshape", StringComparison.Ordinal) ? TensorTransform.ConvToLinear : TensorTransform.SliceRows;
            Assert.Equal(expectedTransform, m.Transform);
            rows++;
        }
        Assert.Equal(plan.Mappings.Count, rows);

        AssertConfigMatches(ReadJson(Keys(model, "unet", "config.json")), plan.UnetConfig, $"{model} unet");
        AssertConfigMatches(ReadJson(Keys(model, "vae", "config.json")), plan.VaeConfig, $"{model} vae");
        AssertConfigMatches(ReadJson(Keys(model, "text_encoder", "config.json")), plan.TextEncoderConfig, $"{model} text_encoder");
    }

    [Theory]
    [InlineData("sd15")]
    [InlineData("sd21")]
    public void DiffusersListingsMapToTheScriptLayout(string model)
    {
        var unet = ComponentListing(model, "unet");
        var vae = ComponentListing(model, "vae");
        var text = ComponentListing(model, "text_encoder");
        var variant = model == "sd15" ? SdVariant.Sd1 : SdVariant.Sd2;
        var expected = ReadListing(Full($"{model}.keys.tsv"));
        AssertSameShapes(expected, ToLdmShapes(unet, vae, text, variant), model);

        // Legacy diffusers VAE attention names map to the same layout.
        var legacyVae = vae.ToDictionary(kv => kv.Key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.")
            .Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn."), kv => kv.Value);
        Assert.Contains("encoder.mid_block.attentions.0.query.weight", legacyVae.Keys);
        AssertSameShapes(expected, ToLdmShapes(unet, legacyVae, text, variant), model + " legacy vae names");
    }

    static Dictionary<string, long[]> ToLdmShapes(Dictionary<string, long[]> unet, Dictionary<string, long[]> vae, Dictionary<string, long[]> text, SdVariant variant)
    {
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (key, m) in SingleFileCheckpoint.PlanToLdm(unet.Keys, vae.Keys, text.Keys, variant))
        {
            var src = m.Component switch { ModelComponent.Unet => unet, ModelComponent.Vae => vae, _ => text };
            result[key] = m.TargetShape(k => src[k]);
        }
        return result;
    }

    [Fact]
    public void ReleasedSd21LayoutWithExtrasMapsAndReportsIgnoredKeys()
    {
        var shapes = ReadListing(Full("sd21.keys.tsv"));
        foreach (var k in shapes.Keys.Where(k => k.StartsWith("cond_stage_model.", StringComparison.Ordinal)).ToList()) shapes.Remove(k);
        foreach (var (k, v) in ReadListing(Full("sd21.openclip-text.keys.tsv"))) shapes[k] = v;
        foreach (var (k, v) in ReadListing(Full("ldm-schedule-buffers.tsv"))) shapes[k] = v;
        shapes["model_ema.decay"] = [];
        shapes["model_ema.num_updates"] = [];
        shapes["model_ema.diffusion_modelinput_blocks00weight"] = [320, 4, 3, 3];

        var plan = SingleFileCheckpoint.Plan(shapes, 110000, new SingleFileOptions(), "released-sd21");
        AssertSameShapes(ComponentListing("sd21", "text_encoder"), plan.TargetShapes[ModelComponent.TextEncoder], "released text encoder");
        AssertSameShapes(ComponentListing("sd21", "unet"), plan.TargetShapes[ModelComponent.Unet], "unet");
        Assert.Equal(23, (int)plan.TextEncoderConfig["num_hidden_layers"]!);
        var extras = JsonNode.Parse(File.ReadAllText(Full("released-extras.json")))!;
        foreach (var k in extras["keys_only_in_released_layout"]!.AsArray().Select(x => (string)x!))
            Assert.Contains(k, plan.IgnoredKeys);
        foreach (var k in extras["ldm_schedule_buffers"]!.AsArray().Select(x => (string)x!))
            Assert.Contains(k, plan.IgnoredKeys);
        Assert.Contains("model_ema.decay", plan.IgnoredKeys);
        Assert.Contains(plan.Warnings, w => w.Contains("EMA", StringComparison.Ordinal));
        // global_step 110000 (SD 2.1-v): v-prediction at 768 by diffusers' rule.
        Assert.Equal(PredictionType.VPrediction, plan.PredictionType);
        Assert.Equal(768, plan.ImageSize);
        Assert.Equal(96, (int)plan.UnetConfig["sample_size"]!);
        Assert.True((bool)plan.UnetConfig["upcast_attention"]!);
    }

    [Fact]
    public void Sd15ReleasedExtrasAreIgnored()
    {
        var shapes = ReadListing(Full("sd15.keys.tsv"));
        shapes["cond_stage_model.transformer.text_model.embeddings.position_ids"] = [1, 77];
        foreach (var (k, v) in ReadListing(Full("ldm-schedule-buffers.tsv"))) shapes[k] = v;
        var plan = SingleFileCheckpoint.Plan(shapes, 470000, new SingleFileOptions(), "sd15-released");
        Assert.Contains("cond_stage_model.transformer.text_model.embeddings.position_ids", plan.IgnoredKeys);
        Assert.Equal(13, plan.IgnoredKeys.Count);
        AssertSameShapes(ComponentListing("sd15", "text_encoder"), plan.TargetShapes[ModelComponent.TextEncoder], "text encoder");
        Assert.Equal(PredictionType.Epsilon, plan.PredictionType);
        Assert.Equal(512, plan.ImageSize);
    }

    [Fact]
    public void Sd2PredictionTypeFollowsGlobalStepOrOptions()
    {
        var shapes = ReadListing(Full("sd21.keys.tsv"));
        var none = SingleFileCheckpoint.Plan(shapes, null, new SingleFileOptions(), "x");
        Assert.Null(none.PredictionType);
        Assert.Null(none.ImageSize);
        Assert.Contains(none.Warnings, w => w.Contains("SingleFileOptions.PredictionType", StringComparison.Ordinal));
        var baseModel = SingleFileCheckpoint.Plan(shapes, 875000, new SingleFileOptions(), "x");
        Assert.Equal(PredictionType.Epsilon, baseModel.PredictionType);
        Assert.Equal(512, baseModel.ImageSize);
        Assert.False((bool)baseModel.UnetConfig["upcast_attention"]!);
        var overridden = SingleFileCheckpoint.Plan(shapes, 875000, new SingleFileOptions { PredictionType = PredictionType.VPrediction, ImageSize = 768 }, "x");
        Assert.Equal(PredictionType.VPrediction, overridden.PredictionType);
        Assert.Equal(768, (int)overridden.VaeConfig["sample_size"]!);
        shapes["v_pred"] = [];
        Assert.Equal(PredictionType.VPrediction, SingleFileCheckpoint.Plan(shapes, null, new SingleFileOptions(), "x").PredictionType);
        Assert.Throws<ArgumentException>(() => new SingleFileOptions { ImageSize = 500 }.Validate());
    }

    [Fact]
    public void ThreeLevelVaeAndTwoLevelUnetRoundTripThroughTheLdmLayout()
    {
        // A VAE with 3 levels, derived from SD 1.5's 4-level listing: the decoder index is reversed for any level count.
        var vae4 = ComponentListing("sd15", "vae");
        var vae3 = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (k, v) in vae4)
        {
            if (k.StartsWith("encoder.down_blocks.3.", StringComparison.Ordinal) || k.StartsWith("encoder.down_blocks.2.downsamplers", StringComparison.Ordinal)
                || k.StartsWith("decoder.up_blocks.0.", StringComparison.Ordinal)) continue;
            var m = System.Text.RegularExpressions.Regex.Match(k, @"^decoder\.up_blocks\.(\d)\.(.*)$");
            vae3[m.Success ? $"decoder.up_blocks.{int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) - 1}.{m.Groups[2].Value}" : k] = v;
        }
        var unmapped = new List<string>();
        var toLdm = LdmKeyMap.VaeToLdm(vae3.Keys, unmapped);
        Assert.Empty(unmapped);
        var ldm = toLdm.ToDictionary(m => m.Target, m => m.TargetShape(k => vae3[k]));
        Assert.Contains("decoder.up.2.block.0.conv1.weight", ldm.Keys);
        Assert.Equal(vae3["decoder.up_blocks.0.resnets.0.conv1.weight"], ldm["decoder.up.2.block.0.conv1.weight"]);
        Assert.Contains("decoder.up.2.upsample.conv.weight", ldm.Keys);
        Assert.DoesNotContain("decoder.up.0.upsample.conv.weight", ldm.Keys);
        Assert.Equal(3, LdmKeyMap.VaeLayoutFromLdm(ldm.Keys).Levels);
        var back = LdmKeyMap.VaeToDiffusers(ldm.Keys, unmapped).ToDictionary(m => m.Target, m => m.TargetShape(k => ldm[k]));
        Assert.Empty(unmapped);
        AssertSameShapes(vae3, back, "3-level vae");

        // UNet with 3 layers per block would need input_blocks 0..11 for 3 levels: check layout arithmetic generally.
        var unet = ComponentListing("sd15", "unet");
        var unetLdm = LdmKeyMap.UnetToLdm(unet.Keys, unmapped).ToDictionary(m => m.Target, m => m.TargetShape(k => unet[k]));
        var unetBack = LdmKeyMap.UnetToDiffusers(unetLdm.Keys, unmapped).ToDictionary(m => m.Target, m => m.TargetShape(k => unetLdm[k]));
        Assert.Empty(unmapped);
        AssertSameShapes(unet, unetBack, "unet round trip");
    }

    [Fact]
    public void UnknownKeysInsideAComponentAreRefused()
    {
        var shapes = ReadListing(Full("sd15.keys.tsv"));
        shapes["model.diffusion_model.label_emb.0.0.weight"] = [1280, 2048];
        var e = Assert.Throws<ModelLoadException>(() => SingleFileCheckpoint.Plan(shapes, null, new SingleFileOptions(), "odd.safetensors"));
        Assert.Contains("label_emb", e.Message);
        var noVae = ReadListing(Full("sd15.keys.tsv")).Where(kv => !kv.Key.StartsWith("first_stage_model.", StringComparison.Ordinal)).ToDictionary();
        Assert.Contains("VAE", Assert.Throws<ModelLoadException>(() => SingleFileCheckpoint.Plan(noVae, null, new SingleFileOptions(), "x")).Message);
    }

    [Fact]
    public void Sd2TextEncoderFusesAndSplitsQkvWithRealTensors()
    {
        using var dir = TestPaths.NewTempDir();
        torch.manual_seed(7);
        var text = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal)
        {
            ["text_model.embeddings.token_embedding.weight"] = torch.randn(50, 8),
            ["text_model.embeddings.position_embedding.weight"] = torch.randn(77, 8),
            ["text_model.final_layer_norm.weight"] = torch.randn(8),
            ["text_model.final_layer_norm.bias"] = torch.randn(8),
        };
        for (int l = 0; l < 2; l++)
        {
            string p = $"text_model.encoder.layers.{l}.";
            foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                text[$"{p}self_attn.{proj}.weight"] = torch.randn(8, 8);
                text[$"{p}self_attn.{proj}.bias"] = torch.randn(8);
            }
            foreach (var ln in new[] { "layer_norm1", "layer_norm2" })
            {
                text[$"{p}{ln}.weight"] = torch.randn(8);
                text[$"{p}{ln}.bias"] = torch.randn(8);
            }
            text[$"{p}mlp.fc1.weight"] = torch.randn(16, 8);
            text[$"{p}mlp.fc1.bias"] = torch.randn(16);
            text[$"{p}mlp.fc2.weight"] = torch.randn(8, 16);
            text[$"{p}mlp.fc2.bias"] = torch.randn(8);
        }
        var unet = Safetensors.Load(Tiny("diffusers", "unet", "diffusion_pytorch_model.safetensors"));
        var vae = Safetensors.Load(Tiny("diffusers", "vae", "diffusion_pytorch_model.safetensors"));
        var path = dir.File("sd2.safetensors");
        SingleFileCheckpoint.Write(path, unet, vae, text, SdVariant.Sd2);

        var ldm = Safetensors.Load(path);
        var fused = ldm["cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight"];
        Assert.Equal(new long[] { 24, 8 }, fused.shape);
        Assert.True(fused.equal(torch.cat([text["text_model.encoder.layers.1.self_attn.q_proj.weight"],
            text["text_model.encoder.layers.1.self_attn.k_proj.weight"], text["text_model.encoder.layers.1.self_attn.v_proj.weight"]], 0)).all().item<bool>());
        Assert.Contains("cond_stage_model.model.positional_embedding", ldm.Keys);
        Assert.Contains("cond_stage_model.model.ln_final.weight", ldm.Keys);

        var options = TinyOptions with { TextEncoderAttentionHeads = 2, PredictionType = PredictionType.VPrediction };
        using (var model = SingleFileCheckpoint.Read(path, options))
        {
            Assert.Equal(SdVariant.Sd2, model.Variant);
            AssertSameTensors(text, model.TextEncoderState, "sd2 text encoder");
            AssertSameTensors(unet, model.UnetState, "unet");
            AssertSameTensors(vae, model.VaeState, "vae");
            Assert.Equal("gelu", (string)model.TextEncoderConfig["hidden_act"]!);
            Assert.Equal(2, (int)model.TextEncoderConfig["num_hidden_layers"]!);
            Assert.True((bool)model.UnetConfig["upcast_attention"]!);
        }

        // The released OpenCLIP layout: an extra last block plus text_projection / logit_scale, which SD 2.x does not use.
        ldm["cond_stage_model.model.text_projection"] = torch.randn(8, 8);
        ldm["cond_stage_model.model.logit_scale"] = torch.tensor(4.6f);
        foreach (var k in ldm.Keys.Where(k => k.Contains(".resblocks.1.", StringComparison.Ordinal)).ToList())
            ldm[k.Replace(".resblocks.1.", ".resblocks.2.", StringComparison.Ordinal)] = torch.randn(ldm[k].shape);
        var released = dir.File("released.safetensors");
        Safetensors.Save(released, ldm);
        using (var model = SingleFileCheckpoint.Read(released, options))
        {
            AssertSameTensors(text, model.TextEncoderState, "sd2 released layout");
            Assert.Contains("cond_stage_model.model.transformer.resblocks.2.attn.in_proj_weight", model.IgnoredKeys);
            Assert.Contains("cond_stage_model.model.text_projection", model.IgnoredKeys);
        }
        foreach (var d in new[] { text, unet, vae, ldm }) foreach (var t in d.Values) t.Dispose();
    }

    [Fact]
    public void EmaWeightsAreUsedOnlyWhenAsked()
    {
        var shapes = ReadListing(Full("sd15.keys.tsv"));
        foreach (var k in shapes.Keys.Where(k => k.StartsWith("model.diffusion_model.", StringComparison.Ordinal)).ToList())
            shapes["model_ema." + k["model.".Length..].Replace(".", "", StringComparison.Ordinal)] = shapes[k];
        shapes["model_ema.decay"] = [];
        shapes["model_ema.num_updates"] = [];
        var plain = SingleFileCheckpoint.Plan(shapes, null, new SingleFileOptions(), "ema.ckpt");
        Assert.All(plain.Mappings.Where(m => m.Component == ModelComponent.Unet), m => Assert.StartsWith("model.diffusion_model.", m.Sources[0]));
        var ema = SingleFileCheckpoint.Plan(shapes, null, new SingleFileOptions { UseEmaWeights = true }, "ema.ckpt");
        var conv = ema.Mappings.Single(m => m.Target == "conv_in.weight");
        Assert.Equal("model_ema.diffusion_modelinput_blocks00weight", conv.Sources[0]);
        AssertSameShapes(ComponentListing("sd15", "unet"), ema.TargetShapes[ModelComponent.Unet], "ema unet");
        shapes.Remove("model_ema.diffusion_modelout2bias");
        Assert.Contains("model_ema.diffusion_modelout2bias",
            Assert.Throws<ModelLoadException>(() => SingleFileCheckpoint.Plan(shapes, null, new SingleFileOptions { UseEmaWeights = true }, "ema.ckpt")).Message);
    }

    [Fact]
    public void FileKindIsDetectedByContentNotName()
    {
        using var dir = TestPaths.NewTempDir();
        var renamed = dir.File("actually-safetensors.ckpt");
        File.Copy(Tiny("tiny-sd1.safetensors"), renamed);
        using (var m = SingleFileCheckpoint.Read(renamed, TinyOptions))
            Assert.Equal(600, m.UnetState.Count + m.VaeState.Count + m.TextEncoderState.Count);
        var zipNamedSafetensors = dir.File("actually-ckpt.safetensors");
        File.Copy(Tiny("tiny-sd1.ckpt"), zipNamedSafetensors);
        using (var m = SingleFileCheckpoint.Read(zipNamedSafetensors, TinyOptions))
            Assert.Equal(SdVariant.Sd1, m.Variant);
    }
}
