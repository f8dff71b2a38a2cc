using System.Text.Json.Nodes;
using DreamBooth.Sampling;

namespace DreamBooth.Loading.SingleFile;

/// <summary>
/// Infers diffusers/transformers <c>config.json</c> objects from the tensor shapes of converted
/// (diffusers-named) state dicts, as diffusers' <c>single_file_utils</c> does from the LDM
/// architecture: channels, layers and cross-attention size come from shapes, linear vs conv
/// <c>proj_in</c> from its rank; head counts and group-norm size cannot be read from weights and
/// take Stable Diffusion's values (SD 1.x: 8 heads; SD 2.x: 64 channels per head) unless
/// <see cref="SingleFileOptions"/> says otherwise.
/// </summary>
public static class SdConfigInference
{
    /// <summary>The <c>scaling_factor</c> of the Stable Diffusion 1.x/2.x VAE.</summary>
    public const double SdVaeScalingFactor = 0.18215;

    /// <summary>The UNet2DConditionModel config.</summary>
    public static JsonObject Unet(IReadOnlyDictionary<string, long[]> s, SdVariant variant, SingleFileOptions options,
        PredictionType? prediction, int imageSize, string path)
    {
        var keys = s.Keys.ToList();
        var layout = LdmKeyMap.UnetLayoutFromDiffusers(keys);
        var channels = new List<long>();
        for (int l = 0; l < layout.Levels; l++)
            channels.Add(Shape(s, $"down_blocks.{l}.resnets.0.conv1.weight", path)[0]);
        long crossDim = s.Where(kv => kv.Key.EndsWith(".attn2.to_k.weight", StringComparison.Ordinal)).Select(kv => kv.Value[^1]).FirstOrDefault();
        var projIn = s.Where(kv => kv.Key.EndsWith(".proj_in.weight", StringComparison.Ordinal)).Select(kv => kv.Value.Length).Distinct().ToList();
        bool linearProjection = projIn.Count == 1 && projIn[0] == 2;
        int groups = Groups(options, channels, path);
        var transformerLayers = Enumerable.Range(0, layout.Levels).Where(l => layout.DownAttention[l])
            .Select(l => keys.Where(k => k.StartsWith($"down_blocks.{l}.attentions.0.transformer_blocks.", StringComparison.Ordinal))
                .Select(k => k.Split('.')[5]).Distinct().Count()).Distinct().ToList();

        JsonNode headDim;
        if (options.AttentionHeadDim is { } given)
        {
            if (given.Count != 1 && given.Count != layout.Levels)
                throw new ModelLoadException(path, $"SingleFileOptions.AttentionHeadDim has {given.Count} values but the UNet has {layout.Levels} levels; give one value or one per level");
            headDim = given.Count == 1 ? given[0] : Arr(given.Select(x => (long)x));
        }
        else if (variant == SdVariant.Sd1)
            headDim = 8; // LDM v1 yaml: num_heads 8
        else
        {
            // LDM v2 yaml: num_head_channels 64 -> diffusers' attention_head_dim = channels // 64 per level.
            if (channels.Any(c => c % 64 != 0))
                throw new ModelLoadException(path, $"cannot infer the UNet's attention heads: block_out_channels [{string.Join(", ", channels)}] are not multiples of 64 (SD 2.x uses 64 channels per head); set SingleFileOptions.AttentionHeadDim");
            headDim = Arr(channels.Select(c => c / 64));
        }
        string Down(int l) => layout.DownAttention[l] ? "CrossAttnDownBlock2D" : "DownBlock2D";
        string Up(int b) => layout.UpAttention[b] ? "CrossAttnUpBlock2D" : "UpBlock2D";
        return new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["act_fn"] = "silu",
            ["attention_head_dim"] = headDim,
            ["block_out_channels"] = Arr(channels),
            ["center_input_sample"] = false,
            ["cross_attention_dim"] = crossDim,
            ["down_block_types"] = new JsonArray(Enumerable.Range(0, layout.Levels).Select(l => (JsonNode?)Down(l)).ToArray()),
            ["downsample_padding"] = 1,
            ["dual_cross_attention"] = false,
            ["flip_sin_to_cos"] = true,
            ["freq_shift"] = 0,
            ["in_channels"] = Shape(s, "conv_in.weight", path)[1],
            ["layers_per_block"] = layout.LayersPerBlock,
            ["mid_block_scale_factor"] = 1,
            ["mid_block_type"] = layout.MidAttention ? "UNetMidBlock2DCrossAttn" : null,
            ["norm_eps"] = 1e-5,
            ["norm_num_groups"] = groups,
            ["num_class_embeds"] = null,
            ["only_cross_attention"] = false,
            ["out_channels"] = Shape(s, "conv_out.weight", path)[0],
            ["sample_size"] = imageSize / 8,
            ["transformer_layers_per_block"] = transformerLayers.Count == 1 ? transformerLayers[0] : 1,
            ["up_block_types"] = new JsonArray(Enumerable.Range(0, layout.Levels).Select(b => (JsonNode?)Up(b)).ToArray()),
            // diffusers' SD 2.1 (768-v) config upcasts attention to fp32; SD 1.x and 2.x base do not.
            ["upcast_attention"] = variant == SdVariant.Sd2 && prediction == PredictionType.VPrediction,
            ["use_linear_projection"] = linearProjection,
        };
    }

    /// <summary>The AutoencoderKL config.</summary>
    public static JsonObject Vae(IReadOnlyDictionary<string, long[]> s, SingleFileOptions options, int imageSize, string path)
    {
        var layout = LdmKeyMap.VaeLayoutFromDiffusers(s.Keys.ToList());
        var channels = new List<long>();
        for (int l = 0; l < layout.Levels; l++)
            channels.Add(Shape(s, $"encoder.down_blocks.{l}.resnets.0.conv1.weight", path)[0]);
        int groups = Groups(options, channels, path);
        return new JsonObject
        {
            ["_class_name"] = "AutoencoderKL",
            ["act_fn"] = "silu",
            ["block_out_channels"] = Arr(channels),
            ["down_block_types"] = new JsonArray(Enumerable.Repeat(0, layout.Levels).Select(_ => (JsonNode?)"DownEncoderBlock2D").ToArray()),
            ["force_upcast"] = true,
            ["in_channels"] = Shape(s, "encoder.conv_in.weight", path)[1],
            ["latent_channels"] = Shape(s, "decoder.conv_in.weight", path)[1],
            ["layers_per_block"] = layout.LayersPerBlock,
            ["mid_block_add_attention"] = layout.MidAttention,
            ["norm_num_groups"] = groups,
            ["out_channels"] = Shape(s, "decoder.conv_out.weight", path)[0],
            ["sample_size"] = imageSize,
            ["scaling_factor"] = SdVaeScalingFactor,
            ["up_block_types"] = new JsonArray(Enumerable.Repeat(0, layout.Levels).Select(_ => (JsonNode?)"UpDecoderBlock2D").ToArray()),
            ["use_post_quant_conv"] = s.ContainsKey("post_quant_conv.weight"),
            ["use_quant_conv"] = s.ContainsKey("quant_conv.weight"),
        };
    }

    /// <summary>The transformers CLIPTextConfig (<c>hidden_act</c> quick_gelu for SD 1.x's CLIP-L, gelu for SD 2.x's OpenCLIP-H).</summary>
    public static JsonObject TextEncoder(IReadOnlyDictionary<string, long[]> s, SdVariant variant, SingleFileOptions options, string path)
    {
        var tok = Shape(s, "text_model.embeddings.token_embedding.weight", path);
        var pos = Shape(s, "text_model.embeddings.position_embedding.weight", path);
        long hidden = tok[1];
        int layers = s.Keys.Where(k => k.StartsWith("text_model.encoder.layers.", StringComparison.Ordinal))
            .Select(k => k.Split('.')[3]).Distinct().Count();
        if (layers == 0)
            throw new ModelLoadException(path, "the text encoder has no layers");
        long intermediate = Shape(s, "text_model.encoder.layers.0.mlp.fc1.weight", path)[0];
        long heads;
        if (options.TextEncoderAttentionHeads is { } h)
        {
            if (hidden % h != 0)
                throw new ModelLoadException(path, $"SingleFileOptions.TextEncoderAttentionHeads = {h} does not divide the text encoder's hidden size {hidden}");
            heads = h;
        }
        else if (hidden % 64 == 0)
            heads = hidden / 64; // CLIP-L: 768/64 = 12, OpenCLIP-H: 1024/64 = 16
        else
            throw new ModelLoadException(path, $"cannot infer the text encoder's attention heads: hidden size {hidden} is not a multiple of 64 (CLIP's head size); set SingleFileOptions.TextEncoderAttentionHeads");
        return new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPTextModel"),
            ["attention_dropout"] = 0.0,
            ["bos_token_id"] = 0,
            ["dropout"] = 0.0,
            ["eos_token_id"] = 2,
            ["hidden_act"] = variant == SdVariant.Sd1 ? "quick_gelu" : "gelu",
            ["hidden_size"] = hidden,
            ["initializer_factor"] = 1.0,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = intermediate,
            ["layer_norm_eps"] = 1e-5,
            ["max_position_embeddings"] = pos[0],
            ["model_type"] = "clip_text_model",
            ["num_attention_heads"] = heads,
            ["num_hidden_layers"] = layers,
            ["pad_token_id"] = 1,
            // Unused by CLIPTextModel; the published configs say 768 (CLIP-L) and 512 (OpenCLIP-H).
            ["projection_dim"] = variant == SdVariant.Sd2 && hidden == 1024 ? 512 : hidden,
            ["vocab_size"] = tok[0],
        };
    }

    /// <summary>
    /// The scheduler config of the published pipelines (SD 1.x: PNDM, SD 2.x: DDIM) with the training
    /// noise schedule of LDM (scaled-linear betas 0.00085..0.012 over 1000 steps) and the prediction type.
    /// </summary>
    public static JsonObject Scheduler(SdVariant variant, PredictionType prediction)
    {
        var o = new JsonObject
        {
            ["_class_name"] = variant == SdVariant.Sd1 ? "PNDMScheduler" : "DDIMScheduler",
            ["beta_end"] = 0.012,
            ["beta_schedule"] = "scaled_linear",
            ["beta_start"] = 0.00085,
            ["clip_sample"] = false,
            ["num_train_timesteps"] = 1000,
            ["prediction_type"] = prediction == PredictionType.VPrediction ? "v_prediction" : "epsilon",
            ["set_alpha_to_one"] = false,
            ["steps_offset"] = 1,
            ["timestep_spacing"] = "leading",
            ["trained_betas"] = null,
        };
        if (variant == SdVariant.Sd1) o["skip_prk_steps"] = true;
        return o;
    }

    static int Groups(SingleFileOptions options, List<long> channels, string path)
    {
        int g = options.NormNumGroups ?? 32;
        var bad = channels.Where(c => c % g != 0).ToList();
        if (bad.Count > 0)
            throw new ModelLoadException(path, options.NormNumGroups is null
                ? $"cannot infer norm_num_groups: channels [{string.Join(", ", channels)}] are not all multiples of Stable Diffusion's 32; set SingleFileOptions.NormNumGroups"
                : $"SingleFileOptions.NormNumGroups = {g} does not divide the channel counts [{string.Join(", ", channels)}]");
        return g;
    }

    static long[] Shape(IReadOnlyDictionary<string, long[]> s, string key, string path) =>
        s.TryGetValue(key, out var v) && v.Length > 0
            ? v
            : throw new ModelLoadException(path, $"the converted state dict has no '{key}' (the checkpoint is incomplete or not Stable Diffusion)");

    static JsonArray Arr(IEnumerable<long> v) => new(v.Select(x => (JsonNode?)x).ToArray());
}
