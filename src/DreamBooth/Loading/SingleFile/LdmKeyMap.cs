using System.Globalization;
using System.Text.RegularExpressions;

namespace DreamBooth.Loading.SingleFile;

/// <summary>Which Stable Diffusion generation a single file belongs to (decides the text-encoder layout).</summary>
public enum SdVariant
{
    /// <summary>SD 1.x: CLIP ViT-L/14 text encoder under <c>cond_stage_model.transformer.</c>.</summary>
    Sd1,

    /// <summary>SD 2.x: OpenCLIP ViT-H/14 text encoder under <c>cond_stage_model.model.</c> (fused q/k/v).</summary>
    Sd2,
}

/// <summary>The three networks a Stable Diffusion single file holds.</summary>
public enum ModelComponent
{
    Unet,
    Vae,
    TextEncoder,
}

/// <summary>How one target tensor is made from its source tensor(s).</summary>
public enum TensorTransform
{
    /// <summary>The same tensor.</summary>
    Copy,

    /// <summary>A 1×1 convolution weight [C,C,1,1] becomes a Linear weight [C,C] (LDM VAE attention → diffusers).</summary>
    ConvToLinear,

    /// <summary>A Linear weight [C,C] becomes a 1×1 convolution weight [C,C,1,1] (diffusers → LDM VAE attention).</summary>
    LinearToConv,

    /// <summary>Part <c>Part</c> of <c>Parts</c> equal row blocks (dim 0) of the source: q, k or v of a fused in_proj.</summary>
    SliceRows,

    /// <summary>The sources concatenated along dim 0 (q, k, v → fused in_proj).</summary>
    ConcatRows,
}

/// <summary>One tensor of the converted state dict and where it comes from.</summary>
public sealed record TensorMapping(ModelComponent Component, string Target, IReadOnlyList<string> Sources,
    TensorTransform Transform, int Part = 0, int Parts = 1)
{
    /// <summary>The target's shape, from the source shapes (checks the transform applies).</summary>
    public long[] TargetShape(Func<string, long[]> shapeOf)
    {
        var s = shapeOf(Sources[0]);
        switch (Transform)
        {
            case TensorTransform.Copy:
                return s;
            case TensorTransform.ConvToLinear:
                if (s.Length == 2) return s;
                if (s.Length == 4 && s[2] == 1 && s[3] == 1) return [s[0], s[1]];
                throw new ArgumentException($"'{Sources[0]}' has shape [{string.Join(", ", s)}], expected a 1x1 convolution weight [C, C, 1, 1]");
            case TensorTransform.LinearToConv:
                if (s.Length == 4) return s;
                if (s.Length == 2) return [s[0], s[1], 1, 1];
                throw new ArgumentException($"'{Sources[0]}' has shape [{string.Join(", ", s)}], expected a Linear weight [C, C]");
            case TensorTransform.SliceRows:
                if (s.Length == 0 || s[0] % Parts != 0)
                    throw new ArgumentException($"'{Sources[0]}' has shape [{string.Join(", ", s)}]: dim 0 does not split into {Parts} equal parts (fused q, k, v)");
                return [s[0] / Parts, .. s[1..]];
            case TensorTransform.ConcatRows:
                var shapes = Sources.Select(shapeOf).ToList();
                if (shapes.Any(x => x.Length == 0 || !x.AsSpan(1).SequenceEqual(s.AsSpan(1))))
                    throw new ArgumentException($"'{string.Join("', '", Sources)}' cannot be concatenated along dim 0 (shapes differ)");
                return [shapes.Sum(x => x[0]), .. s[1..]];
            default:
                throw new ArgumentOutOfRangeException(nameof(shapeOf));
        }
    }
}

/// <summary>
/// The key mapping between the CompVis/LDM single-file layout and the diffusers/transformers layout,
/// derived from the architecture (levels, layers per block, which levels have attention) rather
/// than from a table, so it holds for any <c>block_out_channels</c>, <c>layers_per_block</c> and
/// number of VAE levels. It follows diffusers' <c>single_file_utils.convert_ldm_unet_checkpoint</c>,
/// <c>convert_ldm_vae_checkpoint</c>, <c>convert_open_clip_checkpoint</c> and
/// <c>scripts/convert_diffusers_to_original_stable_diffusion.py</c>. Keys here are without the
/// component prefixes (<c>model.diffusion_model.</c>, <c>first_stage_model.</c>, ...).
/// </summary>
public static partial class LdmKeyMap
{
    /// <summary>Structure of a UNet2DConditionModel as far as key names are concerned.</summary>
    public sealed record UnetLayout(int Levels, int LayersPerBlock, bool[] DownAttention, bool[] UpAttention, bool MidAttention);

    /// <summary>Structure of an AutoencoderKL as far as key names are concerned.</summary>
    public sealed record VaeLayout(int Levels, int LayersPerBlock, bool MidAttention);

    enum Kind { Plain, UnetResnet, VaeResnet, VaeAttention }

    sealed record Module(string Ldm, string Diffusers, Kind Kind);

    static readonly (string Ldm, string Diffusers)[] UnetResnetNames =
    [
        ("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
        ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut"),
    ];

    static readonly (string Ldm, string Diffusers)[] VaeResnetNames =
    [
        ("norm1", "norm1"), ("conv1", "conv1"), ("norm2", "norm2"), ("conv2", "conv2"), ("nin_shortcut", "conv_shortcut"),
    ];

    static readonly (string Ldm, string Diffusers)[] VaeAttentionNames =
    [
        ("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0"),
    ];

    /// <summary>diffusers' pre-0.15 VAE attention names, accepted on input: query/key/value/proj_attn.</summary>
    static readonly (string Legacy, string Current)[] LegacyVaeAttentionNames =
    [
        ("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0"),
    ];

    /// <summary>
    /// Renames a diffusers VAE key with the pre-0.15 attention names (<c>query</c>, <c>key</c>, <c>value</c>,
    /// <c>proj_attn</c>) to the current ones (<c>to_q</c>, <c>to_k</c>, <c>to_v</c>, <c>to_out.0</c>), as
    /// diffusers' <c>_convert_deprecated_attention_blocks</c> does; other keys are returned unchanged.
    /// </summary>
    public static string NormalizeLegacyVaeKey(string key)
    {
        var m = LegacyVaeAttentionRegex().Match(key);
        if (!m.Success) return key;
        var current = LegacyVaeAttentionNames.First(x => x.Legacy == m.Groups[2].Value).Current;
        return m.Groups[1].Value + current + m.Groups[3].Value;
    }

    // ------------------------------------------------------------------------------------------ UNet

    /// <summary>Reads the UNet structure from LDM keys (<c>input_blocks.N.M...</c>).</summary>
    public static UnetLayout UnetLayoutFromLdm(IReadOnlyCollection<string> keys)
    {
        var input = Indices(keys, InputBlockRegex());
        if (input.Count == 0)
            throw new FormatException("no 'input_blocks.N' keys: not an LDM UNet");
        var downs = input.Where(i => keys.Any(k => k.StartsWith($"input_blocks.{i}.0.op.", StringComparison.Ordinal))).OrderBy(i => i).ToList();
        int levels = downs.Count + 1;
        int n = downs.Count > 0 ? downs[0] - 1 : input.Max();
        if (n < 1 || input.Max() != levels * n + levels - 1 || input.Min() != 0 || input.Count != input.Max() + 1)
            throw new FormatException($"unsupported UNet layout: input_blocks 0..{input.Max()} with downsamplers at [{string.Join(", ", downs)}] do not form levels of equal size");
        var downAttn = new bool[levels];
        for (int l = 0; l < levels; l++)
        {
            var has = Enumerable.Range(0, n).Select(j => 1 + l * (n + 1) + j)
                .Select(i => keys.Any(k => k.StartsWith($"input_blocks.{i}.1.", StringComparison.Ordinal))).Distinct().ToList();
            if (has.Count != 1)
                throw new FormatException($"unsupported UNet layout: level {l} has attention on some resnets only");
            downAttn[l] = has[0];
        }
        var output = Indices(keys, OutputBlockRegex());
        if (output.Count != levels * (n + 1) || output.Min() != 0 || output.Max() != levels * (n + 1) - 1)
            throw new FormatException($"unsupported UNet layout: expected output_blocks 0..{levels * (n + 1) - 1} for {levels} levels of {n} layers");
        var upAttn = new bool[levels];
        for (int b = 0; b < levels; b++)
        {
            var has = Enumerable.Range(0, n + 1).Select(j => b * (n + 1) + j)
                .Select(i => keys.Any(k => k.StartsWith($"output_blocks.{i}.1.", StringComparison.Ordinal)
                                           && !k.StartsWith($"output_blocks.{i}.1.conv.", StringComparison.Ordinal))).Distinct().ToList();
            if (has.Count != 1)
                throw new FormatException($"unsupported UNet layout: output level {b} has attention on some resnets only");
            upAttn[b] = has[0];
        }
        bool midAttn = keys.Any(k => k.StartsWith("middle_block.2.", StringComparison.Ordinal));
        return new UnetLayout(levels, n, downAttn, upAttn, midAttn);
    }

    /// <summary>Reads the UNet structure from diffusers keys (<c>down_blocks.L.resnets.J...</c>).</summary>
    public static UnetLayout UnetLayoutFromDiffusers(IReadOnlyCollection<string> keys)
    {
        var levels = Indices(keys, DownBlocksRegex());
        if (levels.Count == 0 || levels.Min() != 0 || levels.Max() != levels.Count - 1)
            throw new FormatException("no consecutive 'down_blocks.N' keys: not a diffusers UNet");
        int l = levels.Count;
        int n = Indices(keys, new Regex(@"^down_blocks\.0\.resnets\.(\d+)\.")).Count;
        var downAttn = Enumerable.Range(0, l).Select(i => keys.Any(k => k.StartsWith($"down_blocks.{i}.attentions.", StringComparison.Ordinal))).ToArray();
        var upAttn = Enumerable.Range(0, l).Select(i => keys.Any(k => k.StartsWith($"up_blocks.{i}.attentions.", StringComparison.Ordinal))).ToArray();
        bool midAttn = keys.Any(k => k.StartsWith("mid_block.attentions.", StringComparison.Ordinal));
        return new UnetLayout(l, n, downAttn, upAttn, midAttn);
    }

    static List<Module> UnetModules(UnetLayout u)
    {
        var m = new List<Module>
        {
            new("time_embed.0", "time_embedding.linear_1", Kind.Plain),
            new("time_embed.2", "time_embedding.linear_2", Kind.Plain),
            new("input_blocks.0.0", "conv_in", Kind.Plain),
            new("out.0", "conv_norm_out", Kind.Plain),
            new("out.2", "conv_out", Kind.Plain),
        };
        int i = 1;
        for (int l = 0; l < u.Levels; l++)
        {
            for (int j = 0; j < u.LayersPerBlock; j++, i++)
            {
                m.Add(new($"input_blocks.{i}.0", $"down_blocks.{l}.resnets.{j}", Kind.UnetResnet));
                if (u.DownAttention[l]) m.Add(new($"input_blocks.{i}.1", $"down_blocks.{l}.attentions.{j}", Kind.Plain));
            }
            if (l < u.Levels - 1)
                m.Add(new($"input_blocks.{i++}.0.op", $"down_blocks.{l}.downsamplers.0.conv", Kind.Plain));
        }
        m.Add(new("middle_block.0", "mid_block.resnets.0", Kind.UnetResnet));
        if (u.MidAttention)
        {
            m.Add(new("middle_block.1", "mid_block.attentions.0", Kind.Plain));
            m.Add(new("middle_block.2", "mid_block.resnets.1", Kind.UnetResnet));
        }
        else m.Add(new("middle_block.1", "mid_block.resnets.1", Kind.UnetResnet));
        i = 0;
        for (int b = 0; b < u.Levels; b++)
            for (int j = 0; j <= u.LayersPerBlock; j++, i++)
            {
                m.Add(new($"output_blocks.{i}.0", $"up_blocks.{b}.resnets.{j}", Kind.UnetResnet));
                int next = 1;
                if (u.UpAttention[b]) m.Add(new($"output_blocks.{i}.{next++}", $"up_blocks.{b}.attentions.{j}", Kind.Plain));
                if (j == u.LayersPerBlock && b < u.Levels - 1)
                    m.Add(new($"output_blocks.{i}.{next}.conv", $"up_blocks.{b}.upsamplers.0.conv", Kind.Plain));
            }
        return m;
    }

    // ------------------------------------------------------------------------------------------ VAE

    /// <summary>Reads the VAE structure from LDM keys (<c>encoder.down.I.block.J...</c>).</summary>
    public static VaeLayout VaeLayoutFromLdm(IReadOnlyCollection<string> keys)
    {
        var levels = Indices(keys, new Regex(@"^encoder\.down\.(\d+)\."));
        if (levels.Count == 0 || levels.Min() != 0 || levels.Max() != levels.Count - 1)
            throw new FormatException("no consecutive 'encoder.down.N' keys: not an LDM VAE");
        int n = Indices(keys, new Regex(@"^encoder\.down\.0\.block\.(\d+)\.")).Count;
        return new VaeLayout(levels.Count, n, keys.Any(k => k.StartsWith("encoder.mid.attn_1.", StringComparison.Ordinal)));
    }

    /// <summary>Reads the VAE structure from diffusers keys.</summary>
    public static VaeLayout VaeLayoutFromDiffusers(IReadOnlyCollection<string> keys)
    {
        var levels = Indices(keys, new Regex(@"^encoder\.down_blocks\.(\d+)\."));
        if (levels.Count == 0 || levels.Min() != 0 || levels.Max() != levels.Count - 1)
            throw new FormatException("no consecutive 'encoder.down_blocks.N' keys: not a diffusers VAE");
        int n = Indices(keys, new Regex(@"^encoder\.down_blocks\.0\.resnets\.(\d+)\.")).Count;
        return new VaeLayout(levels.Count, n, keys.Any(k => k.StartsWith("encoder.mid_block.attentions.", StringComparison.Ordinal)));
    }

    static List<Module> VaeModules(VaeLayout v)
    {
        var m = new List<Module>
        {
            new("encoder.conv_in", "encoder.conv_in", Kind.Plain),
            new("encoder.conv_out", "encoder.conv_out", Kind.Plain),
            new("encoder.norm_out", "encoder.conv_norm_out", Kind.Plain),
            new("decoder.conv_in", "decoder.conv_in", Kind.Plain),
            new("decoder.conv_out", "decoder.conv_out", Kind.Plain),
            new("decoder.norm_out", "decoder.conv_norm_out", Kind.Plain),
            new("quant_conv", "quant_conv", Kind.Plain),
            new("post_quant_conv", "post_quant_conv", Kind.Plain),
        };
        for (int l = 0; l < v.Levels; l++)
        {
            for (int j = 0; j < v.LayersPerBlock; j++)
                m.Add(new($"encoder.down.{l}.block.{j}", $"encoder.down_blocks.{l}.resnets.{j}", Kind.VaeResnet));
            if (l < v.Levels - 1)
                m.Add(new($"encoder.down.{l}.downsample.conv", $"encoder.down_blocks.{l}.downsamplers.0.conv", Kind.Plain));
        }
        for (int b = 0; b < v.Levels; b++)
        {
            int l = v.Levels - 1 - b; // LDM counts decoder levels from the highest resolution
            for (int j = 0; j <= v.LayersPerBlock; j++)
                m.Add(new($"decoder.up.{l}.block.{j}", $"decoder.up_blocks.{b}.resnets.{j}", Kind.VaeResnet));
            if (b < v.Levels - 1)
                m.Add(new($"decoder.up.{l}.upsample.conv", $"decoder.up_blocks.{b}.upsamplers.0.conv", Kind.Plain));
        }
        foreach (var part in new[] { "encoder", "decoder" })
        {
            m.Add(new($"{part}.mid.block_1", $"{part}.mid_block.resnets.0", Kind.VaeResnet));
            m.Add(new($"{part}.mid.block_2", $"{part}.mid_block.resnets.1", Kind.VaeResnet));
            if (v.MidAttention) m.Add(new($"{part}.mid.attn_1", $"{part}.mid_block.attentions.0", Kind.VaeAttention));
        }
        return m;
    }

    // ------------------------------------------------------------------------------------------ generic

    /// <summary>
    /// Maps UNet or VAE keys of one layout to the other. Every key must belong to a module of the
    /// layout; otherwise the keys that do not are reported (<paramref name="unmapped"/>).
    /// </summary>
    static List<TensorMapping> MapModules(ModelComponent component, List<Module> modules, IEnumerable<string> keys,
        bool toDiffusers, List<string> unmapped)
    {
        var byPrefix = new Dictionary<string, Module>(StringComparer.Ordinal);
        foreach (var mod in modules) byPrefix[toDiffusers ? mod.Ldm : mod.Diffusers] = mod;
        var result = new List<TensorMapping>();
        foreach (var key in keys)
        {
            Module? mod = null;
            string rest = "";
            for (int dot = key.LastIndexOf('.'); dot > 0; dot = key.LastIndexOf('.', dot - 1))
                if (byPrefix.TryGetValue(key[..dot], out mod)) { rest = key[(dot + 1)..]; break; }
            if (mod == null) { unmapped.Add(key); continue; }
            var (sub, transform) = MapSuffix(mod.Kind, rest, toDiffusers);
            if (sub == null) { unmapped.Add(key); continue; }
            string target = (toDiffusers ? mod.Diffusers : mod.Ldm) + "." + sub;
            result.Add(new TensorMapping(component, target, [key], transform));
        }
        return result;
    }

    static (string? Suffix, TensorTransform Transform) MapSuffix(Kind kind, string rest, bool toDiffusers)
    {
        switch (kind)
        {
            case Kind.Plain:
                return (rest, TensorTransform.Copy);
            case Kind.UnetResnet:
                return (Rename(rest, UnetResnetNames, toDiffusers), TensorTransform.Copy);
            case Kind.VaeResnet:
                return (Rename(rest, VaeResnetNames, toDiffusers), TensorTransform.Copy);
            case Kind.VaeAttention:
                {
                    string r = rest;
                    if (!toDiffusers)
                        foreach (var (legacy, current) in LegacyVaeAttentionNames)
                            if (r.StartsWith(legacy + ".", StringComparison.Ordinal)) { r = current + r[legacy.Length..]; break; }
                    var s = Rename(r, VaeAttentionNames, toDiffusers);
                    if (s == null) return (null, TensorTransform.Copy);
                    bool isProjWeight = s.EndsWith(".weight", StringComparison.Ordinal) && !s.StartsWith("group_norm.", StringComparison.Ordinal) && !s.StartsWith("norm.", StringComparison.Ordinal);
                    return (s, isProjWeight ? (toDiffusers ? TensorTransform.ConvToLinear : TensorTransform.LinearToConv) : TensorTransform.Copy);
                }
            default:
                return (null, TensorTransform.Copy);
        }
    }

    static string? Rename(string rest, (string Ldm, string Diffusers)[] names, bool toDiffusers)
    {
        foreach (var (ldm, diff) in names)
        {
            var (from, to) = toDiffusers ? (ldm, diff) : (diff, ldm);
            if (rest.StartsWith(from + ".", StringComparison.Ordinal))
                return to + rest[from.Length..];
        }
        return null;
    }

    /// <summary>LDM UNet keys → diffusers keys.</summary>
    public static List<TensorMapping> UnetToDiffusers(IReadOnlyCollection<string> ldmKeys, List<string> unmapped) =>
        MapModules(ModelComponent.Unet, UnetModules(UnetLayoutFromLdm(ldmKeys)), ldmKeys, true, unmapped);

    /// <summary>diffusers UNet keys → LDM keys.</summary>
    public static List<TensorMapping> UnetToLdm(IReadOnlyCollection<string> diffusersKeys, List<string> unmapped) =>
        MapModules(ModelComponent.Unet, UnetModules(UnetLayoutFromDiffusers(diffusersKeys)), diffusersKeys, false, unmapped);

    /// <summary>LDM VAE keys → diffusers keys (mid attention 1×1 convs become Linear weights).</summary>
    public static List<TensorMapping> VaeToDiffusers(IReadOnlyCollection<string> ldmKeys, List<string> unmapped) =>
        MapModules(ModelComponent.Vae, VaeModules(VaeLayoutFromLdm(ldmKeys)), ldmKeys, true, unmapped);

    /// <summary>diffusers VAE keys (current or legacy attention names) → LDM keys.</summary>
    public static List<TensorMapping> VaeToLdm(IReadOnlyCollection<string> diffusersKeys, List<string> unmapped) =>
        MapModules(ModelComponent.Vae, VaeModules(VaeLayoutFromDiffusers(diffusersKeys)), diffusersKeys, false, unmapped);

    // ------------------------------------------------------------------------------------------ text

    /// <summary>SD 1.x: <c>cond_stage_model.transformer.</c> keys (prefix removed) → transformers CLIPTextModel keys.</summary>
    public static List<TensorMapping> ClipToDiffusers(IEnumerable<string> keys, List<string> ignored)
    {
        var result = new List<TensorMapping>();
        foreach (var key in keys)
        {
            if (key.EndsWith("position_ids", StringComparison.Ordinal)) { ignored.Add(key); continue; }
            // Checkpoints saved with transformers < 4.0 lack the "text_model." level.
            var target = key.StartsWith("text_model.", StringComparison.Ordinal) ? key : "text_model." + key;
            result.Add(new TensorMapping(ModelComponent.TextEncoder, target, [key], TensorTransform.Copy));
        }
        return result;
    }

    /// <summary>SD 1.x: CLIPTextModel keys → keys under <c>cond_stage_model.transformer.</c> (unchanged, as the script does).</summary>
    public static List<TensorMapping> ClipToLdm(IEnumerable<string> keys) =>
        keys.Select(k => new TensorMapping(ModelComponent.TextEncoder, k, [k], TensorTransform.Copy)).ToList();

    static readonly (string OpenClip, string Hf)[] OpenClipLayerNames =
    [
        ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"),
        ("attn.out_proj", "self_attn.out_proj"),
    ];

    /// <summary>Number of <c>transformer.resblocks.N</c> in OpenCLIP keys.</summary>
    public static int OpenClipBlockCount(IReadOnlyCollection<string> keys) =>
        Indices(keys, new Regex(@"^transformer\.resblocks\.(\d+)\.")).Count;

    /// <summary>
    /// SD 2.x: OpenCLIP keys (<c>cond_stage_model.model.</c> removed) → CLIPTextModel keys with
    /// <paramref name="layers"/> layers. The fused <c>in_proj_weight/bias</c> are split into q, k, v at
    /// a third of their rows (the hidden size; not at <c>text_projection</c>, see the fixture README).
    /// Blocks beyond <paramref name="layers"/>, <c>text_projection</c>, <c>logit_scale</c> and
    /// <c>attn_mask</c> are unused by Stable Diffusion and reported in <paramref name="ignored"/>.
    /// </summary>
    public static List<TensorMapping> OpenClipToDiffusers(IReadOnlyCollection<string> keys, int layers, List<string> ignored, List<string> unmapped)
    {
        const string Tm = "text_model.";
        var result = new List<TensorMapping>();
        foreach (var key in keys)
        {
            switch (key)
            {
                case "token_embedding.weight":
                    result.Add(new(ModelComponent.TextEncoder, Tm + "embeddings.token_embedding.weight", [key], TensorTransform.Copy));
                    continue;
                case "positional_embedding":
                    result.Add(new(ModelComponent.TextEncoder, Tm + "embeddings.position_embedding.weight", [key], TensorTransform.Copy));
                    continue;
                case "ln_final.weight" or "ln_final.bias":
                    result.Add(new(ModelComponent.TextEncoder, Tm + "final_layer_norm." + key["ln_final.".Length..], [key], TensorTransform.Copy));
                    continue;
                case "text_projection" or "logit_scale" or "attn_mask":
                    ignored.Add(key);
                    continue;
            }
            var m = ResblockRegex().Match(key);
            if (!m.Success) { unmapped.Add(key); continue; }
            int n = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            string rest = m.Groups[2].Value;
            if (n >= layers) { ignored.Add(key); continue; }
            string layer = $"{Tm}encoder.layers.{n}.";
            if (rest is "attn.in_proj_weight" or "attn.in_proj_bias")
            {
                string suffix = rest.EndsWith("weight", StringComparison.Ordinal) ? "weight" : "bias";
                string[] qkv = ["q_proj", "k_proj", "v_proj"];
                for (int p = 0; p < 3; p++)
                    result.Add(new(ModelComponent.TextEncoder, $"{layer}self_attn.{qkv[p]}.{suffix}", [key], TensorTransform.SliceRows, p, 3));
                continue;
            }
            var renamed = Rename(rest, OpenClipLayerNames.Select(x => (x.OpenClip, x.Hf)).ToArray(), true);
            if (renamed == null) { unmapped.Add(key); continue; }
            result.Add(new(ModelComponent.TextEncoder, layer + renamed, [key], TensorTransform.Copy));
        }
        return result;
    }

    /// <summary>
    /// SD 2.x: CLIPTextModel keys → OpenCLIP keys (under <c>cond_stage_model.model.</c>), fusing q, k, v into
    /// <c>in_proj_weight/bias</c> as the conversion script does. <c>position_ids</c> is dropped.
    /// </summary>
    public static List<TensorMapping> OpenClipToLdm(IReadOnlyCollection<string> keys, List<string> ignored, List<string> unmapped)
    {
        var result = new List<TensorMapping>();
        var set = new HashSet<string>(keys, StringComparer.Ordinal);
        foreach (var key in keys)
        {
            switch (key)
            {
                case "text_model.embeddings.token_embedding.weight":
                    result.Add(new(ModelComponent.TextEncoder, "token_embedding.weight", [key], TensorTransform.Copy));
                    continue;
                case "text_model.embeddings.position_embedding.weight":
                    result.Add(new(ModelComponent.TextEncoder, "positional_embedding", [key], TensorTransform.Copy));
                    continue;
                case "text_model.final_layer_norm.weight" or "text_model.final_layer_norm.bias":
                    result.Add(new(ModelComponent.TextEncoder, "ln_final." + key["text_model.final_layer_norm.".Length..], [key], TensorTransform.Copy));
                    continue;
                case "text_model.embeddings.position_ids":
                    ignored.Add(key);
                    continue;
            }
            var m = HfLayerRegex().Match(key);
            if (!m.Success) { unmapped.Add(key); continue; }
            string n = m.Groups[1].Value, rest = m.Groups[2].Value;
            string block = $"transformer.resblocks.{n}.";
            var qkv = QkvRegex().Match(rest);
            if (qkv.Success)
            {
                if (qkv.Groups[1].Value != "q") continue; // emitted once, from q
                string suffix = qkv.Groups[2].Value;
                string[] parts = ["q_proj", "k_proj", "v_proj"];
                var sources = parts.Select(p => $"text_model.encoder.layers.{n}.self_attn.{p}.{suffix}").ToList();
                var missing = sources.Where(s => !set.Contains(s)).ToList();
                if (missing.Count > 0) { unmapped.AddRange(missing); continue; }
                result.Add(new(ModelComponent.TextEncoder, block + "attn.in_proj_" + suffix, sources, TensorTransform.ConcatRows));
                continue;
            }
            var renamed = Rename(rest, OpenClipLayerNames.Select(x => (x.OpenClip, x.Hf)).ToArray(), false);
            if (renamed == null) { unmapped.Add(key); continue; }
            result.Add(new(ModelComponent.TextEncoder, block + renamed, [key], TensorTransform.Copy));
        }
        return result;
    }

    static HashSet<int> Indices(IEnumerable<string> keys, Regex r)
    {
        var set = new HashSet<int>();
        foreach (var k in keys)
        {
            var m = r.Match(k);
            if (m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i < 100_000)
                set.Add(i);
        }
        return set;
    }

    [GeneratedRegex(@"^((?:encoder|decoder)\.mid_block\.attentions\.\d+\.)(query|key|value|proj_attn)(\.(?:weight|bias))$")]
    private static partial Regex LegacyVaeAttentionRegex();

    [GeneratedRegex(@"^input_blocks\.(\d+)\.")]
    private static partial Regex InputBlockRegex();

    [GeneratedRegex(@"^output_blocks\.(\d+)\.")]
    private static partial Regex OutputBlockRegex();

    [GeneratedRegex(@"^down_blocks\.(\d+)\.")]
    private static partial Regex DownBlocksRegex();

    [GeneratedRegex(@"^transformer\.resblocks\.(\d+)\.(.+)$")]
    private static partial Regex ResblockRegex();

    [GeneratedRegex(@"^text_model\.encoder\.layers\.(\d+)\.(.+)$")]
    private static partial Regex HfLayerRegex();

    [GeneratedRegex(@"^self_attn\.(q|k|v)_proj\.(weight|bias)$")]
    private static partial Regex QkvRegex();
}
